"""Disk faults (issue 12 item 5): a read-only or uncreatable cache, a full disk, an unwritable output or run directory
give one error line naming the path and what to do, exit non-zero and no traceback; results already computed are
still printed; nothing torn is left behind; a read-only cache still serves what it holds.

Writes are made to fail by monkeypatching the write path (`advisor.io`'s temp-file creation and rename, sqlite's
connection), because tests may run as root, for whom chmod blocks nothing; where a real fault can be made without
root's help (a cache path below a regular file), it is used as is.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

MODEL = "timm:test_vit"
FEATURES = ["--model", MODEL, "--random-init", "--no-progress"]
FAST_BENCH = [
    "--device",
    "cpu",
    "--min-time",
    "0.02",
    "--max-time",
    "0.5",
    "--min-repeats",
    "3",
    "--warmup",
    "1",
]


def _app():
    from advisor.cli.main import app

    return app


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for ci, c in enumerate(("ant", "bee", "cat")):
        (root / c).mkdir(parents=True)
        for i in range(6):
            arr = (rng.random((16, 16, 3)) * 60 + ci * 60).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def _cache() -> Path:
    return Path(os.environ["ADVISOR_CACHE_DIR"])


def _fail_writes(monkeypatch, code: int, under: Path, *, at: str = "create") -> list[str]:
    """Make atomic writes below ``under`` fail with ``code``: when the temp file is created (``create``: read-only
    folder, permission denied) or when it is renamed into place (``rename``: the disk filled up while writing).
    Returns the list of paths that failed."""
    import advisor.io as io_mod

    failed: list[str] = []
    under = under.resolve()
    real_mkstemp, real_replace = io_mod.tempfile.mkstemp, io_mod.os.replace

    def blocked(p: str | os.PathLike) -> bool:
        return Path(p).resolve().is_relative_to(under)

    def mkstemp(*a, dir=None, **k):  # noqa: A002 - tempfile's own parameter name
        if at == "create" and dir is not None and blocked(dir):
            failed.append(str(dir))
            raise OSError(code, os.strerror(code), str(dir))
        return real_mkstemp(*a, dir=dir, **k)

    def replace(src, dst, *a, **k):
        if at == "rename" and blocked(dst):
            failed.append(str(dst))
            raise OSError(code, os.strerror(code), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(io_mod.os, "replace", replace)
    return failed


def _error_line(r, *must: str) -> tuple[str, str]:
    """Non-zero exit, no traceback, exactly one ``Error:`` line (plus its ``hint:`` line) on stderr, containing
    each of ``must`` (across the error and its hint). Returns (error line, hint line)."""
    assert r.exit_code not in (0, None), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output and "OSError" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    i = lines.index(errors[0])
    hint = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("hint:") else ""
    assert lines[i + 1 + bool(hint) :] == [], f"more after the error:\n{r.stderr}"
    for text in must:
        assert text in errors[0] + hint, f"{text!r} not in:\n{errors[0]}\n{hint}"
    return errors[0], hint


def _tmp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")] if root.exists() else []


# ------------------------------------------------------------------------------------------------ features
def test_features_with_a_read_only_cache_names_the_cache_and_the_variable(data, monkeypatch):
    failed = _fail_writes(monkeypatch, errno.EACCES, _cache())
    r = CliRunner().invoke(_app(), ["features", "--data", str(data), *FEATURES])
    err, hint = _error_line(r, "permission denied", "ADVISOR_CACHE_DIR")
    assert failed and str(_cache()) in err and "cannot write the cache file" in err


def test_features_when_the_disk_fills_up_says_free_space_and_leaves_nothing_torn(data, monkeypatch):
    failed = _fail_writes(monkeypatch, errno.ENOSPC, _cache(), at="rename")
    r = CliRunner().invoke(_app(), ["features", "--data", str(data), *FEATURES, "--format", "json"])
    err, hint = _error_line(r, "the disk is full", "free disk space", "ADVISOR_CACHE_DIR")
    assert failed and failed[0] in err
    assert r.stdout == ""  # nothing was computed to completion, so nothing claims to be a result
    assert _tmp_leftovers(_cache()) == []


def test_features_with_a_cache_root_that_cannot_be_created(data, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(blocker / "cache"))  # a real fault, root or not
    r = CliRunner().invoke(_app(), ["features", "--data", str(data), *FEATURES])
    err, _ = _error_line(r, str(blocker / "cache"), "ADVISOR_CACHE_DIR")
    assert "not a directory" in err.lower() or "exists" in err.lower()


def test_features_out_file_on_a_read_only_disk_keeps_the_cached_work(data, monkeypatch, tmp_path):
    out_dir = tmp_path / "readonly-out"
    out_dir.mkdir()
    _fail_writes(monkeypatch, errno.EROFS, out_dir)
    args = ["features", "--data", str(data), *FEATURES, "--format", "json"]
    r = CliRunner().invoke(_app(), [*args, "--out", str(out_dir / "f.npz")])
    _error_line(r, str(out_dir / "f.npz"), "read-only", "--out")
    assert not (out_dir / "f.npz").exists() and _tmp_leftovers(out_dir) == []
    cache = _cache()
    monkeypatch.undo()
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(cache))
    again = CliRunner().invoke(_app(), [*args, "--out", str(tmp_path / "f.npz")])
    assert again.exit_code == 0, again.output
    assert (
        json.loads(again.stdout)["cache_hit"] is True
    )  # the features were cached before the --out write failed


def test_a_read_only_cache_still_serves_what_it_holds(data, monkeypatch):
    args = ["features", "--data", str(data), *FEATURES, "--format", "json"]
    first = CliRunner().invoke(_app(), args)
    assert first.exit_code == 0, first.output
    failed = _fail_writes(monkeypatch, errno.EROFS, _cache())
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["cache_hit"] is True and failed == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes through chmod")
def test_features_with_a_chmod_read_only_cache(data, monkeypatch):
    _cache().chmod(0o500)
    try:
        r = CliRunner().invoke(_app(), ["features", "--data", str(data), *FEATURES])
        # _error_line asserts: non-zero exit, no traceback, exactly one Error: line (+ hint) holding each text
        err, hint = _error_line(r, str(_cache()), "permission denied", "ADVISOR_CACHE_DIR")
        assert str(_cache()) in err and "ADVISOR_CACHE_DIR" in hint
    finally:
        _cache().chmod(0o700)


# ------------------------------------------------------------------------------------------------ recommend
@pytest.fixture
def tiny_model(tmp_path):
    """test_vit with random weights saved as a local file (recommend loads pretrained weights; this is offline)."""
    import timm
    import torch
    from safetensors.torch import save_file

    f = tmp_path / "models" / "test_vit.safetensors"
    f.parent.mkdir()
    torch.manual_seed(0)
    m = timm.create_model("test_vit", pretrained=False)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return f"local:{f}?arch=timm:test_vit&input_size=32"


def _recommend(data: Path, model: str) -> list[str]:
    return ["recommend", str(data), "-m", model, "--no-bench", "--no-baselines", "--folds", "3"]


def test_recommend_with_an_unwritable_run_dir_prints_results_then_the_error(
    data, tiny_model, monkeypatch, tmp_path
):
    run = tmp_path / "runs" / "r1"
    failed = _fail_writes(monkeypatch, errno.EACCES, tmp_path / "runs")
    r = CliRunner().invoke(_app(), [*_recommend(data, tiny_model), "--out", str(run), "--format", "json"])
    _error_line(r, str(run), "permission denied", "--out")
    assert failed
    res = json.loads(r.stdout)  # the computed ranking, in full, before the error
    ranked = [c for c in res["candidates"] if c["rank"] is not None]
    assert [c["model_id"] for c in ranked] == [tiny_model] and ranked[0]["probe"]["accuracy"] is not None
    assert res["run_dir"] is None and not (run / "results.json").exists()


def test_recommend_with_a_run_dir_that_cannot_be_created_human_output(data, tiny_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = blocker / "run"  # a real fault, root or not
    r = CliRunner().invoke(_app(), [*_recommend(data, tiny_model), "--out", str(run)])
    _error_line(r, str(run))
    assert "test_vit.safetensors" in r.stdout  # the ranking table was printed before the error


def test_recommend_with_a_full_disk_under_the_run_dir(data, tiny_model, monkeypatch, tmp_path):
    run = tmp_path / "full" / "r1"
    _fail_writes(monkeypatch, errno.ENOSPC, tmp_path / "full", at="rename")
    r = CliRunner().invoke(_app(), [*_recommend(data, tiny_model), "--out", str(run), "--format", "json"])
    _error_line(r, "the disk is full", "free disk space")
    assert json.loads(r.stdout)["candidates"][0]["model_id"] == tiny_model
    assert _tmp_leftovers(tmp_path / "full") == []


# ------------------------------------------------------------------------------------------------ bench store
def test_bench_store_that_cannot_be_opened(monkeypatch):
    (_cache() / "bench.sqlite").mkdir(parents=True)  # sqlite cannot open a folder: a real fault, root or not
    r = CliRunner().invoke(_app(), ["bench", MODEL, "--batch-sizes", "1", *FAST_BENCH])
    # _error_line asserts: non-zero exit, no traceback, exactly one Error: line (+ hint) holding each text
    err, hint = _error_line(r, str(_cache() / "bench.sqlite"), "ADVISOR_CACHE_DIR")
    assert str(_cache() / "bench.sqlite") in err and "ADVISOR_CACHE_DIR" in hint


def test_bench_store_on_a_full_disk(monkeypatch):
    import advisor.bench.store as store_mod

    real_connect = sqlite3.connect

    class FullDisk:
        """A connection whose writes fail as sqlite fails on a full disk (reads are fine)."""

        def __init__(self, *a, **k):
            self._con = real_connect(*a, **k)

        def __getattr__(self, name):
            return getattr(self._con, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._con.__exit__(*exc)

        def execute(self, sql, *a):
            if sql.lstrip().upper().startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._con.execute(sql, *a)

    monkeypatch.setattr(store_mod.sqlite3, "connect", FullDisk)
    r = CliRunner().invoke(_app(), ["bench", MODEL, "--batch-sizes", "1", *FAST_BENCH])
    # _error_line asserts: non-zero exit, no traceback, exactly one Error: line (+ hint) holding each text
    err, hint = _error_line(r, "bench.sqlite", "database or disk is full", "free disk space")
    assert "database or disk is full" in err and "free disk space" in hint


# ------------------------------------------------------------------------------------------------ library
def test_storage_error_messages_name_the_path_and_the_fix(tmp_path, monkeypatch):
    from advisor.cache import Cache
    from advisor.errors import StorageError
    from advisor.io import storage_error

    e = storage_error(_cache() / "probes" / "x.json", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(e, StorageError) and "the disk is full" in e.message and str(_cache()) in e.message
    assert (
        e.hint == "free disk space, or set ADVISOR_CACHE_DIR to a writable folder on a disk with free space"
    )
    e = storage_error(tmp_path / "out.csv", OSError(errno.EACCES, "Permission denied"))
    assert e.message == f"cannot write {tmp_path / 'out.csv'}: permission denied"
    assert e.hint == "choose a writable output folder (--out)"
    _fail_writes(monkeypatch, errno.EROFS, _cache())
    with pytest.raises(StorageError, match="read-only") as err:
        Cache("probes", suffix=".json").put_json("scores-k", {"a": 1})
    assert str(_cache() / "probes" / "scores-k.json") in err.value.message
