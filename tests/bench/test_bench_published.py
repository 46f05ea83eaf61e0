"""`advisor bench`'s published figures come from the derived records shipped with the package (never from upstream
tables at run time), and every figure names its repository, commit, file and protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import advisor.bench.published as published
from advisor.bench.published import published_bench_path, published_gmacs, published_throughput


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


TABLE = "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv"


@pytest.fixture
def fake_records(tmp_path, monkeypatch):
    p = _write(
        tmp_path / "published_bench.jsonl",
        [
            {
                "kind": "table",
                "table": TABLE,
                "repository": "https://github.com/huggingface/pytorch-image-models",
                "commit": "0123456789abcdef0123456789abcdef01234567",
                "file": f"results/{TABLE}",
                "protocol": "timm benchmark.py inference",
            },
            {
                "kind": "row",
                "table": TABLE,
                "model": "toynet",
                "img_size": 224,
                "batch_size": 256,
                "samples_per_sec": 12.5,
                "step_time_ms": 20480.0,
                "param_count_m": 1.5,
                "gmacs": 0.25,
            },
        ],
    )
    monkeypatch.setattr(published, "published_bench_path", lambda: p)
    return p


def test_throughput_and_gmacs_come_from_the_derived_records_with_provenance(fake_records):
    (row,) = published_throughput("timm:toynet.a1_in1k", "cpu", 224)
    assert row["file"] == TABLE and row["samples_per_sec"] == 12.5 and row["batch_size"] == 256
    assert row["provenance"] == f"https://github.com/huggingface/pytorch-image-models@0123456 results/{TABLE}"
    assert row["protocol"] == "timm benchmark.py inference" and row["device_class"] == "cpu"
    assert published_throughput("timm:toynet", "cuda") == []  # a CPU table is not compared with a GPU run
    assert published_throughput("timm:toynet", "cpu", 288) == []  # nor at another input size
    (g,) = published_gmacs("timm:toynet", 224)
    assert g["gmacs"] == 0.25 and g["source"] == TABLE and "@0123456" in g["provenance"]


def test_no_records_file_means_no_published_throughput(monkeypatch):
    monkeypatch.setattr(published, "published_bench_path", lambda: None)
    assert published_throughput("timm:resnet50", "cpu", 224) == []


def test_shipped_records_are_jsonl_beside_the_catalog_with_table_provenance():
    p = published_bench_path()
    assert p is not None and p.name == "published_bench.jsonl" and (p.parent / "catalog.jsonl").is_file()
    tables, rows = published.published_bench()
    assert len(tables) == 5 and all(t["commit"] and t["repository"] and t["file"] for t in tables.values())
    assert all(r["table"] in tables for r in rows["resnet50"])
    cpu = published_throughput("timm:resnet50.a1_in1k", "cpu", 224)
    assert cpu and all(r["provenance"].startswith(tables[r["file"]]["repository"]) for r in cpu)


def test_torchvision_gmacs_from_the_catalog_prefer_the_default_weights():
    (g,) = published_gmacs("torchvision:resnet50", 224)
    assert g["gmacs"] == pytest.approx(4.089) and g["compare_with"] == "gmacs_torch"
    assert g["weights"] == "ResNet50_Weights.IMAGENET1K_V2" and "torchvision-weights.csv" in g["source"]
