"""advisor.cache: content keys, atomic JSON values, damaged entries deleted and recomputed with one warning;
advisor.progress: the one progress interface (silent unless the CLI installs a display)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from advisor import progress
from advisor.cache import Cache, content_key, report_damage


def _damage(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]


def test_content_key_is_the_sorted_json_hash_and_ignores_key_order():
    a = content_key({"v": 1, "model": "timm:x", "ids": ["a", "b"]})
    assert a == content_key({"ids": ["a", "b"], "model": "timm:x", "v": 1})
    assert a != content_key({"v": 2, "model": "timm:x", "ids": ["a", "b"]})  # the version is part of the key
    assert len(a) == 16 and len(content_key({"v": 1}, length=24)) == 24


def test_json_values_round_trip_under_the_cache_root():
    c = Cache("probes", suffix=".json")
    assert c.get_json("scores-k") is None
    p = c.put_json("scores-k", {"acc": 0.5, "nan": float("nan")})
    assert p == c.path("scores-k") and p.parent == c.root
    assert str(c.root).startswith(os.environ["ADVISOR_CACHE_DIR"])
    assert c.get_json("scores-k") == {"acc": 0.5, "nan": None}
    assert [q.name for q in c.root.iterdir()] == ["scores-k.json"]  # no temp files left


def test_a_damaged_json_entry_is_deleted_and_reported_once(caplog):
    c = Cache("probes", suffix=".json")
    for name in ("torn", "garbage"):
        c.path(name).parent.mkdir(parents=True, exist_ok=True)
    c.path("torn").write_text('{"acc": 0.')
    c.path("garbage").write_bytes(b"\xff\xfe\x00")
    with caplog.at_level(logging.WARNING):
        assert c.get_json("torn") is None and c.get_json("garbage") is None
        c.path("torn").write_text("[1,")
        assert c.get_json("torn") is None
    assert not c.path("torn").exists() and not c.path("garbage").exists()
    msgs = _damage(caplog)
    assert len(msgs) == 2 and all("recomputing it" in m for m in msgs)  # one per entry, not per read
    c.put_json("torn", {"ok": True})
    assert c.get_json("torn") == {"ok": True}


def test_a_group_of_files_is_reported_once(tmp_path, caplog):
    folder = tmp_path / "entry"
    folder.mkdir()
    c = Cache(folder=folder, suffix=".npz")
    for i in range(3):
        c.path(f"chunk-{i}").write_bytes(b"not a zip")
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            assert (
                c.read(f"chunk-{i}", lambda p: json.loads(p.read_text()), group=folder, what="chunk") is None
            )
    assert len(_damage(caplog)) == 1 and "damaged chunk" in _damage(caplog)[0]
    assert list(folder.iterdir()) == []


def test_report_damage_tolerates_a_read_only_cache(tmp_path, monkeypatch, caplog):
    f = tmp_path / "x.json"
    f.write_text("{")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(f), "unlink", refuse)
    with caplog.at_level(logging.WARNING):
        report_damage(f, ValueError("bad"), group=("test", str(f)))
    assert f.exists() and len(_damage(caplog)) == 1


def test_progress_is_silent_without_a_display_and_uses_the_installed_one():
    assert isinstance(progress.progress_bar(10, "m"), progress.NullProgress)
    seen: list[tuple] = []

    class Bar:
        def __init__(self, total: int, label: str) -> None:
            seen.append(("start", total, label))

        def advance(self, n: int) -> None:
            seen.append(("advance", n))

        def close(self) -> None:
            seen.append(("close",))

    previous = progress.set_progress_factory(Bar)
    try:
        bar = progress.progress_bar(10, "timm:x")
        bar.advance(4)
        bar.close()
        assert isinstance(progress.progress_bar(10, "m", enabled=False), progress.NullProgress)
        assert isinstance(progress.progress_bar(0, "m"), progress.NullProgress)
    finally:
        progress.set_progress_factory(previous)
    assert seen == [("start", 10, "timm:x"), ("advance", 4), ("close",)]


def test_the_cli_display_draws_nothing_when_stderr_is_not_a_terminal():
    pytest.importorskip("rich")
    from advisor.cli.progress import terminal_progress

    assert isinstance(terminal_progress(5, "m"), progress.NullProgress)  # pytest captures stderr


def test_an_unreadable_entry_is_recomputed_but_not_deleted(monkeypatch, caplog):
    c = Cache("probes", suffix=".json")
    c.put_json("k", {"a": 1})

    def refuse(p):
        raise PermissionError(13, "Permission denied", str(p))

    with caplog.at_level(logging.WARNING):
        assert c.read("k", refuse) is None
    assert c.path("k").exists()  # not ours to delete: only unreadable
    assert any("cannot read entry" in m and "permission denied" in m for m in caplog.messages)
