"""Hostile model files: a tampered ``.pt2`` never runs code through advisor, and a changed local file is not served stale.

Every malicious archive is built here in ``tmp_path`` from a tiny exported model; each case first proves that
loading it the unsafe way (``torch.export.load`` / ``torch.load(weights_only=False)``) does run the payload, then
that advisor refuses it with one line, a non-zero exit and no marker file.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from advisor.cli.main import app
from advisor.data import load_dataset
from advisor.errors import ModelLoadError
from advisor.features import extract_features
from advisor.models import load_model
from advisor.models.local import TRUST_PICKLE_ENV, pt2_pickle_findings

torch.set_num_threads(1)


class TinyNet(torch.nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class Payload:
    """Unpickling this writes `marker`: the stand-in for any shell command a hostile file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


_CLEAN: dict[str, bytes] = {}


def _export(path: Path) -> Path:
    """A clean torch.export archive of TinyNet (dynamic batch), exported once per session and copied."""
    if "pt2" not in _CLEAN:
        b = torch.export.Dim("b", min=1, max=64)
        ep = torch.export.export(TinyNet().eval(), (torch.zeros(2, 3, 16, 16),), dynamic_shapes={"x": {0: b}})
        buf = io.BytesIO()
        torch.export.save(ep, buf)
        _CLEAN["pt2"] = buf.getvalue()
    path.write_bytes(_CLEAN["pt2"])
    return path


def _rewrite(path: Path, edit: Callable[[str, dict[str, bytes]], None]) -> None:
    """Rewrite the archive's members through `edit(root, members)` (root: the archive's top folder + '/')."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    root = next(iter(members)).split("/", 1)[0] + "/"
    edit(root, members)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, b in members.items():
            zf.writestr(n, b)


def _torch_saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _pickled_weight(root: str, m: dict[str, bytes], marker: Path) -> None:
    cfg_name = root + "data/weights/model_weights_config.json"
    cfg = json.loads(m[cfg_name])
    fqn = next(iter(cfg["config"]))
    cfg["config"][fqn]["use_pickle"] = True
    m[cfg_name] = json.dumps(cfg).encode()
    m[root + "data/weights/" + cfg["config"][fqn]["path_name"]] = _torch_saved(Payload(marker))


def _opaque_constant(root: str, m: dict[str, bytes], marker: Path) -> None:
    cfg_name = root + "data/constants/model_constants_config.json"
    cfg = json.loads(m[cfg_name])
    cfg["config"]["evil"] = {
        "path_name": "opaque_obj_0",
        "is_param": False,
        "use_pickle": True,
        "tensor_meta": None,
    }
    m[cfg_name] = json.dumps(cfg).encode()
    m[root + "data/constants/opaque_obj_0"] = pickle.dumps(Payload(marker))


def _sample_inputs(root: str, m: dict[str, bytes], marker: Path) -> None:
    # torch retries a failed weights_only=True load of sample inputs with weights_only=False.
    m[root + "data/sample_inputs/model.pt"] = _torch_saved(((Payload(marker),), {}))


TAMPERS = {
    "pickled-weight": _pickled_weight,
    "opaque-constant": _opaque_constant,
    "sample-inputs": _sample_inputs,
}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _evil(tmp_path: Path, marker: Path, kind: str) -> Path:
    path = _export(tmp_path / f"{kind}.pt2")
    _rewrite(path, lambda root, m: TAMPERS[kind](root, m, marker))
    return path


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tampered_pt2_runs_code_when_loaded_unsafely(tmp_path: Path, marker: Path, kind: str) -> None:
    """The fixture is real: plain torch.export.load of the archive executes the payload."""
    path = _evil(tmp_path, marker, kind)
    try:
        torch.export.load(str(path))
    except Exception:
        pass  # the payload has run by the time the graph fails to deserialize
    assert marker.read_text() == "pwned"


def test_pickled_payload_runs_under_weights_only_false(tmp_path: Path, marker: Path) -> None:
    """The member advisor refuses is exactly what torch.load(weights_only=False) would execute."""
    path = _evil(tmp_path, marker, "pickled-weight")
    with zipfile.ZipFile(path) as zf:
        blob = zf.read(next(n for n in zf.namelist() if n.endswith("data/weights/weight_0")))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(blob), weights_only=True)
    assert not marker.exists()
    torch.load(io.BytesIO(blob), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_advisor_refuses_tampered_pt2(tmp_path: Path, marker: Path, kind: str) -> None:
    path = _evil(tmp_path, marker, kind)
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}?input_size=16")
    msg = str(ei.value)
    assert str(path) in msg and "refused" in msg and "trust_pickle" in msg
    assert "weights_only=False" not in msg and "\n" not in msg
    assert not marker.exists()


def test_sidecar_cannot_grant_trust(tmp_path: Path, marker: Path) -> None:
    """The trust flag travels with the user's id or environment, never with the (hostile) file's sidecar."""
    path = _evil(tmp_path, marker, "pickled-weight")
    path.with_name(path.name + ".json").write_text(json.dumps({"trust_pickle": "1", "input_size": 16}))
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(f"local:{path}")
    assert not marker.exists()


def test_native_code_and_pkl_members_are_refused(tmp_path: Path) -> None:
    path = _export(tmp_path / "n.pt2")

    def add(root: str, m: dict[str, bytes]) -> None:
        m[root + "data/aotinductor/model/model.so"] = b"\x7fELF"
        m[root + "extra/state.pkl"] = b"\x80\x04N."

    _rewrite(path, add)
    found = pt2_pickle_findings(path.read_bytes())
    assert any("native code" in f for f in found) and any("state.pkl" in f for f in found)
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(f"local:{path}?input_size=16")


def _graph_edit(edit: Callable[[dict], None]) -> Callable[[str, dict[str, bytes]], None]:
    def run(root: str, m: dict[str, bytes]) -> None:
        doc = json.loads(m[root + "models/model.json"])
        edit(doc)
        m[root + "models/model.json"] = json.dumps(doc).encode()

    return run


def _first_node(doc: dict) -> dict:
    return doc["graph_module"]["graph"]["nodes"][0]


def test_code_in_graph_json_runs_unsafely_and_is_refused(tmp_path: Path, marker: Path) -> None:
    """Not a pickle, same effect: guards_code is exec-ed into the module and runs on a call; advisor refuses it."""
    path = _export(tmp_path / "guard.pt2")
    code = f"open({str(marker)!r}, 'w').write('pwned') is None"
    _rewrite(path, _graph_edit(lambda d: d.__setitem__("guards_code", [code])))
    try:
        torch.export.load(str(path)).module()(torch.zeros(2, 3, 16, 16))  # the guards run on the first call
    except Exception:
        pass
    assert marker.read_text() == "pwned"
    marker.unlink()
    with pytest.raises(ModelLoadError, match="guard code"):
        load_model(f"local:{path}?input_size=16")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda d: _first_node(d).__setitem__("target", "torch.os.system"), "a call to 'torch.os.system'"),
        (lambda d: _first_node(d).__setitem__("target", "_operator.methodcaller"), "a call to"),
        (lambda d: d["range_constraints"].__setitem__("__import__('os').getcwd()", {}), "evaluated"),
    ],
)
def test_graph_targets_and_expressions_outside_the_grammar_are_refused(
    tmp_path: Path, edit, what: str
) -> None:
    path = _export(tmp_path / "g.pt2")
    _rewrite(path, _graph_edit(edit))
    with pytest.raises(ModelLoadError, match="refused") as ei:
        load_model(f"local:{path}?input_size=16")
    assert what in str(ei.value)


def test_not_a_zip_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt2"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ModelLoadError, match="not a zip") as ei:
        load_model(f"local:{path}")
    assert str(path) in str(ei.value)


def test_clean_exported_pt2_still_loads(tmp_path: Path) -> None:
    path = _export(tmp_path / "clean.pt2")
    assert pt2_pickle_findings(path.read_bytes()) == []
    m = load_model(f"local:{path}?input_size=16")
    assert m.runtime == "export" and m.feature_dim == 4
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(m.forward((x,)).features, TinyNet().eval()(x).mean((2, 3)))


def test_trust_flag_loads_a_pickled_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the explicit opt-in the archive goes to torch.export.load (here a benign pickled tensor)."""
    path = _export(tmp_path / "mine.pt2")

    def benign(root: str, m: dict[str, bytes]) -> None:
        cfg_name = root + "data/weights/model_weights_config.json"
        cfg = json.loads(m[cfg_name])
        fqn = next(iter(cfg["config"]))
        cfg["config"][fqn]["use_pickle"] = True
        m[cfg_name] = json.dumps(cfg).encode()
        m[root + "data/weights/" + cfg["config"][fqn]["path_name"]] = _torch_saved(
            torch.nn.Parameter(TinyNet().conv.weight.detach().clone())
        )

    _rewrite(path, benign)
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(f"local:{path}?input_size=16")
    assert load_model(f"local:{path}?input_size=16&trust_pickle=1").feature_dim == 4
    monkeypatch.setenv(TRUST_PICKLE_ENV, "1")
    assert load_model(f"local:{path}?input_size=16").feature_dim == 4


def _image_folder(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("ant", "bee")):
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = (rng.random((18, 20, 3)) * 80 + ci * 90).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_features_cli_refuses_tampered_pt2(tmp_path: Path, marker: Path) -> None:
    path = _evil(tmp_path, marker, "pickled-weight")
    data = _image_folder(tmp_path / "imgs")
    args = ["features", "--data", str(data), "--model", f"local:{path}?input_size=16", "--format", "json"]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "500"})
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    # one error line naming the file, plus its hint line
    assert len(lines) == 2 and "refused" in lines[0] and str(path) in lines[0], r.output
    assert lines[1].strip().startswith("hint:") and "trust_pickle" in lines[1]
    assert "weights_only=False" not in r.output
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ stale cache
def _onnx(path: Path, seed: int) -> Path:
    pytest.importorskip("onnx")
    torch.onnx.export(
        TinyNet(seed).eval(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, input_names=["x"],
        output_names=["f"], dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    return path


def test_overwritten_onnx_file_is_not_served_stale(tmp_path: Path) -> None:
    ds = load_dataset(_image_folder(tmp_path / "imgs"))
    path = _onnx(tmp_path / "net.onnx", seed=0)
    mid = f"local:{path}?input_size=16"
    first = extract_features(ds, mid, progress=False)
    assert first.meta["cache_hit"] is False
    assert extract_features(ds, mid, progress=False).meta["cache_hit"] is True
    st = path.stat()
    _onnx(tmp_path / "other.onnx", seed=1).replace(path)
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime as before: only the content differs
    second = extract_features(ds, mid, progress=False)
    assert second.meta["cache_hit"] is False
    assert not np.allclose(first.features, second.features)
    assert second.meta["revision"] != first.meta["revision"]


def test_edited_sidecar_is_not_served_stale(tmp_path: Path) -> None:
    ds = load_dataset(_image_folder(tmp_path / "imgs"))
    path = _onnx(tmp_path / "net.onnx", seed=0)
    side = path.with_name(path.name + ".json")
    side.write_text(json.dumps({"input_size": 16}))
    first = extract_features(ds, f"local:{path}", progress=False)
    assert extract_features(ds, f"local:{path}", progress=False).meta["cache_hit"] is True
    side.write_text(json.dumps({"input_size": 16, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}))
    second = extract_features(ds, f"local:{path}", progress=False)
    assert second.meta["cache_hit"] is False
    assert not np.allclose(first.features, second.features)


# ------------------------------------------------------------------------------------------------ no weights_only=False advice
def test_pickled_pytorch_model_bin_is_refused_without_unsafe_advice(tmp_path: Path, marker: Path) -> None:
    """A save_pretrained folder whose pytorch_model.bin holds a payload: one clean line, never 'weights_only=False'."""
    from transformers import BertConfig

    folder = tmp_path / "hf"
    BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    ).save_pretrained(folder)
    torch.save({"x": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{folder}?modality=text")
    msg = str(ei.value)
    assert "refused to unpickle" in msg and "exec" in msg and "\n" not in msg and "\x1b" not in msg
    assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg
    assert not marker.exists()
