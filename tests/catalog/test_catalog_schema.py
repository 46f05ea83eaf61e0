"""Catalog record validation and license normalisation."""

from __future__ import annotations

import pytest

from advisor.catalog.licenses import commercial_ok, normalize_license
from advisor.catalog.schema import CatalogEntry, Metric
from advisor.errors import CatalogError


def _entry(**kw):
    base = dict(
        id="timm:resnet18.a1_in1k",
        source="timm",
        source_id="resnet18.a1_in1k",
        family="resnet",
        architecture="resnet18",
        modality="image",
        task="image-classification",
        probeable=True,
        probe_note="ok",
    )
    base.update(kw)
    return CatalogEntry(**base)


def test_valid_entry_roundtrips_through_dict():
    e = _entry(
        n_params=11_689_512,
        input_size=(3, 224, 224),
        metrics=(Metric("imagenet-1k", "top1", 71.5, "results-imagenet.csv", 288),),
    )
    d = e.to_dict()
    assert d["input_size"] == [3, 224, 224]
    back = CatalogEntry.from_dict(d)
    assert back == e
    assert back.imagenet_top1 == 71.5
    assert back.name == "resnet18.a1_in1k"


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(id="resnet18"), "source:name"),
        (dict(id="hf:resnet18"), "id prefix"),
        (dict(modality="smell"), "modality"),
        (dict(task="dancing"), "task"),
        (dict(n_params=-1), "n_params"),
        (dict(n_params=1.5), "n_params must be an int"),
        (dict(input_size=(224, 224)), "input_size"),
        (dict(probeable=False, probe_note=None), "probe_note"),
        (dict(license_class="free"), "license_class"),
    ],
)
def test_invalid_entries_are_rejected(kw, message):
    with pytest.raises(CatalogError, match=message):
        _entry(**kw)


def test_entry_is_frozen():
    e = _entry()
    with pytest.raises(AttributeError):
        e.n_params = 5  # type: ignore[misc]


def test_unknown_fields_are_rejected():
    d = _entry().to_dict() | {"accuracy": 99}
    with pytest.raises(CatalogError, match="unknown fields"):
        CatalogEntry.from_dict(d)


@pytest.mark.parametrize(
    "raw, spdx, cls",
    [
        ("apache-2.0", "Apache-2.0", "permissive"),
        ("MIT", "MIT", "permissive"),
        ("bsd-3-clause", "BSD-3-Clause", "permissive"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0", "non-commercial"),
        ("https://github.com/facebookresearch/SWAG/blob/main/LICENSE", "CC-BY-NC-4.0", "non-commercial"),
        ("agpl-3.0", "AGPL-3.0-only", "copyleft"),
        ("dinov3-license", "LicenseRef-DINOv3", "unknown"),
        ("some-new-license", "LicenseRef-some-new-license", "unknown"),
        ("", None, "unknown"),
        (None, None, "unknown"),
        ("unknown", None, "unknown"),
    ],
)
def test_license_normalisation(raw, spdx, cls):
    assert normalize_license(raw) == (spdx, cls)


def test_commercial_policy():
    assert commercial_ok("permissive")
    assert not commercial_ok("copyleft")  # GPL/AGPL: commercial use with copyleft obligations is excluded
    assert not commercial_ok("non-commercial") and not commercial_ok("unknown")
