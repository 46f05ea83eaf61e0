"""The recommend orchestration stays in small pieces: no function over 100 lines, no module over 600."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "advisor"
FILES = sorted([*ROOT.joinpath("recommend").rglob("*.py"), *ROOT.joinpath("tasks").rglob("*.py")])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_small_functions_and_modules(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 100
    ]
    assert long == []


def test_the_run_is_the_list_of_stages():
    from advisor.recommend.stages import STAGES

    assert [s.__name__ for s in STAGES] == [
        "plan_stage",
        "features_and_scores",
        "measure",
        "predict",
        "probe_shortlist",
        "rank",
        "probe_floors",
        "advise",
        "assemble",
    ]
