"""Hostile strings in labels, dataset paths and model paths: Rich markup (`[/INST]`), styling tags, ANSI/OSC escape
sequences, raw HTML and spreadsheet formulas must print as themselves, crash nothing and drive nothing (issue 12,
items 3 and 6)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ESC_LABEL = "\x1b]0;pwn\x07\x1b[31mesc"  # an OSC title change, then "red from here on"
LABELS = ["[/INST]", "[bold red]RED[/bold red]", ESC_LABEL, "<img src=x onerror=alert(1)>"]


def _assert_clean(r, *expected: str) -> None:
    """Exit 0, no traceback, no raw ESC/BEL reaching the terminal, and each expected text printed literally."""
    out = r.output
    assert r.exit_code == 0, out
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in out and "MarkupError" not in out
    assert "\x1b" not in out and "\x07" not in out
    for text in expected:
        assert text in out, f"{text!r} not printed literally:\n{out}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A dataset (4 classes x 6 PNGs of 16x16 px) under a path holding `[/INST]`, labelled by a JSONL manifest
    (a label with a `/` cannot be a folder name) with hostile labels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("hostile")
    data = root / "ds[/INST]"
    (data / "pics").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for k, label in enumerate(LABELS):
        rgb = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)][k])
        for i in range(6):
            arr = np.clip(rgb + rng.normal(0, 20, size=(16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(data / "pics" / f"{k}-{i}.png")
            rows.append(json.dumps({"path": f"pics/{k}-{i}.png", "label": label}))
    (data / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    return root, data


@pytest.fixture(scope="module")
def tiny_model(hostile):
    pytest.importorskip("timm")
    import timm
    import torch
    from safetensors.torch import save_file

    root, _ = hostile
    (root / "m[/]").mkdir(parents=True)
    f = root / "m[/]" / "test_vit.safetensors"
    torch.manual_seed(0)
    m = timm.create_model("test_vit", pretrained=False)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return f"local:{f}?arch=timm:test_vit&input_size=32"


def _app():
    from advisor.cli.main import app

    return app


# ----------------------------------------------------------------------------------------------- the helper
def test_safe_escapes_markup_and_makes_controls_visible():
    from rich.console import Console

    from advisor.cli._output import safe, strip_control

    con = Console(file=io.StringIO(), width=200, color_system="truecolor", force_terminal=True)
    con.print(f"[dim]{safe('[/INST] [bold red]RED[/bold red] ' + ESC_LABEL)}[/]", highlight=False)
    text = con.file.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the one SGR Rich itself writes for [dim]
    assert "[/INST] [bold red]RED[/bold red] \\x1b]0;pwn\\x07\\x1b[31mesc" in plain
    assert "\x07" not in text and "]0;pwn" not in text.replace("\\x1b]0;pwn", "")
    assert strip_control("a\u202eb\x9bc\x7f") == "a\\u202eb\\x9bc\\x7f"  # bidi override, C1 CSI, DEL


# ----------------------------------------------------------------------------------------------- CLI
def test_data_profile_prints_hostile_labels_literally(hostile):
    _, data = hostile
    r = CliRunner().invoke(_app(), ["data", "profile", str(data)])
    _assert_clean(r, "ds[/INST]", "[/INST]", "[bold red]RED[/bold red]", "\\x1b]0;pwn\\x07\\x1b[31mesc")


def test_data_sample_prints_hostile_labels_literally(hostile):
    _, data = hostile
    r = CliRunner().invoke(_app(), ["data", "sample", str(data), "--max-per-class", "1"])
    _assert_clean(r, "[/INST]", "[bold red]RED[/bold red]", "\\x1b]0;pwn\\x07\\x1b[31mesc", "<img src=x")


def test_error_line_with_hostile_path_is_one_clean_line(tmp_path):
    missing = tmp_path / "nope[/INST]\x1b[31m"
    r = CliRunner().invoke(_app(), ["data", "profile", str(missing)])
    assert r.exit_code != 0 and "Traceback" not in r.output and "\x1b" not in r.output
    flat = r.output.replace("\n", "")  # Rich wraps long lines at the (80-column) test terminal
    assert "nope[/INST]\\x1b[31m" in flat and flat.startswith("Error:")


def test_features_with_hostile_data_and_model_paths(hostile, tiny_model, tmp_path):
    _, data = hostile
    out = tmp_path / "out[/]" / "f.npz"
    out.parent.mkdir(parents=True)
    r = CliRunner().invoke(
        _app(), ["features", "--data", str(data), "--model", tiny_model, "--out", str(out), "--no-progress"]
    )
    _assert_clean(r, "m[/]", "out[/]")
    assert out.is_file()


def test_recommend_and_report_with_hostile_labels(hostile, tiny_model, tmp_path):
    _, data = hostile
    run = tmp_path / "run[/]"
    args = ["recommend", str(data), "-m", tiny_model, "--no-bench", "--no-baselines", "--folds", "3"]
    r = CliRunner().invoke(_app(), [*args, "--out", str(run)])
    _assert_clean(r, "ds[/INST]", "run[/]")
    r = CliRunner().invoke(_app(), ["report", str(run)])
    _assert_clean(r, "ds[/INST]")
    # the same run, re-rendered as markdown and CSV: the labels are there, escaped and inert
    md = (run / "report.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\[/INST\\]" in md and "\x1b" not in md
    rows = list(csv.DictReader(io.StringIO((run / "results.csv").read_text())))
    assert rows and rows[0]["model_id"] == tiny_model
    stored = json.loads((run / "results.json").read_text())
    assert sorted(stored["dataset"]["classes"]) == sorted(LABELS)  # the data itself is kept as it is


# ----------------------------------------------------------------------------------------------- report files
def _results():
    from advisor.recommend.results import CandidateResult, RecommendResults

    probe = {
        "accuracy": 0.9,
        "accuracy_ci": [0.85, 0.95],
        "macro_f1": 0.9,
        "per_class_accuracy": [0.9, 0.8, 0.7],
    }
    a = CandidateResult(
        model_id="=2+5+cmd.onnx",
        status="ranked",
        rank=1,
        stage="probe",
        license="<script>alert(1)</script>",
        probe=probe,
        reasons=["-1+1 best probe accuracy | <img src=x onerror=alert(1)>"],
    )
    b = CandidateResult(
        model_id="@SUM(A1)<script>alert(2)</script>`x`",
        status="failed",
        error="+cmd|' /C calc'!A0 [click](javascript:alert(3))",
    )
    return RecommendResults(
        dataset={
            "name": "<script>alert(4)</script>",
            "root": "/data/`x`<b>",
            "modality": "image",
            "fingerprint": "abc",
            "n_samples": 30,
            "n_classes": 3,
            "classes": ["<img src=x onerror=alert(5)>", "a|b", "![t](http://tracker/p.png)"],
            "subsample": {"n": 30},
        },
        config={"data": "/data/<b>", "device": "cpu"},
        candidates=[a, b],
        advice={"strategy": "linear-probe", "summary": "<script>alert(6)</script>", "next_command": "x`<b>"},
        notes=["<img src=x onerror=alert(7)>", "\x1b[31mred"],
        created_utc="2026-01-01T00:00:00Z",
        advisor_version="0.1.0",
    )


def test_markdown_report_carries_no_raw_html_links_or_broken_tables():
    from advisor.report.render import render

    md = render(_results(), "md")
    prose = re.sub(r"(?<![`\\])(`+)(.+?)(?<!`)\1(?!`)", "", md)  # code spans are literal text, never HTML
    assert "<" not in prose, [ln for ln in prose.splitlines() if "<" in ln]
    assert "``/data/`x`<b>``" in md and "``x`<b>``" in md  # a backtick in a value cannot close its code span
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in md and "&lt;img src=x onerror=alert(5)&gt;" in md
    assert "](javascript:" not in md.replace("\\](javascript:", "")  # the link syntax is escaped
    assert "!\\[t\\](http://tracker/p.png)" in md  # no image (a tracking pixel) either
    assert "\x1b" not in md and "\\x1b\\[31mred" in md
    n_cells = None
    for line in md.splitlines():  # every table row has as many cells as its header
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if line.startswith("|---"):
            continue
        if not line.startswith("| "):
            n_cells = None
        elif n_cells is None:
            n_cells = cells
        else:
            assert cells == n_cells, line
    per_class = [ln for ln in md.splitlines() if ln.startswith("| a\\|b")]
    assert len(per_class) == 1 and len(re.split(r"(?<!\\)\|", per_class[0])) - 2 == 2


def test_csv_neutralises_formula_cells_and_keeps_numbers():
    from advisor.report.render import render

    rows = list(csv.reader(io.StringIO(render(_results(), "csv"))))
    head, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    cells = [cell for row in body for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert body[0][col["model_id"]] == "'=2+5+cmd.onnx"
    assert body[0][col["reason"]].startswith("'-1+1")
    assert body[1][col["model_id"]].startswith("'@SUM(A1)")
    assert body[1][col["error"]].startswith("'+cmd")
    assert float(body[0][col["probe_accuracy"]]) == pytest.approx(0.9)  # numbers are not touched
    assert body[0][col["license"]] == "<script>alert(1)</script>"  # CSV is data: HTML is not its concern


def test_report_md_on_stdout_has_no_escape_bytes(tmp_path: Path):
    from advisor.report.render import write_run_dir

    write_run_dir(_results(), tmp_path / "run")
    for fmt in ("md", "csv"):
        r = CliRunner().invoke(_app(), ["report", str(tmp_path / "run"), "--format", fmt])
        assert r.exit_code == 0 and "\x1b" not in r.output, r.output
