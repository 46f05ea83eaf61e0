"""Layering: the library below the CLI never imports the CLI, typer or rich, never prints, reads catalog data only
through `advisor.catalog`, and has no fallbacks for its own modules; the catalog data it reads ships in the wheel."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "advisor"
# Only these render (and may import typer/rich and print); __main__ is the console entry point.
RENDERERS = ("advisor/cli/", "advisor/report/")
ENTRY_POINTS = ("advisor/__main__.py",)
FORBIDDEN_IMPORTS = ("typer", "rich", "click")
# The catalog data files read at run time (package data `advisor.catalog_data`).
RUNTIME_CATALOG_FILES = ("catalog.jsonl", "curated.json", "published_bench.jsonl")


def _library_modules() -> list[tuple[str, ast.Module]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(REPO).as_posix()
        if rel.startswith(RENDERERS) or rel in ENTRY_POINTS:
            continue
        out.append((rel, ast.parse(p.read_text(encoding="utf-8"), filename=rel)))
    assert len(out) > 40, "the scan found too few modules: the package layout changed"
    return out


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Every imported module name, at any depth (function-level imports too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from advisor import cli`
            found += [
                (node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "advisor"
            ]
    return found


def test_the_scanner_sees_function_level_imports():
    tree = ast.parse("def f():\n    from rich.console import Console\n    import typer\n")
    assert [m for _, m in _imports(tree)] == ["rich.console", "typer"]


def test_library_does_not_import_the_cli_typer_or_rich():
    bad = []
    for rel, tree in _library_modules():
        for line, mod in _imports(tree):
            if (
                mod.split(".")[0] in FORBIDDEN_IMPORTS
                or mod == "advisor.cli"
                or mod.startswith("advisor.cli.")
            ):
                bad.append(f"{rel}:{line} imports {mod}")
    assert not bad, "library code must not depend on the CLI or render:\n" + "\n".join(bad)


# child-process scripts whose stdout is their protocol with the parent (JSON lines), not user output
CHILD_SCRIPTS = {"advisor/dense/ultralytics_worker.py"}


def test_library_logs_instead_of_printing():
    bad = []
    for rel, tree in _library_modules():
        if rel in CHILD_SCRIPTS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{rel}:{node.lineno} print()")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("stdout", "stderr")
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                bad.append(f"{rel}:{node.lineno} sys.{node.attr}")
    assert not bad, "library code logs (logging.getLogger(__name__)); only the CLI prints:\n" + "\n".join(bad)


def test_catalog_data_is_read_only_through_advisor_catalog():
    bad = []
    for rel, tree in _library_modules():
        if rel.startswith("advisor/catalog/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "catalog_data" in node.value or node.value in RUNTIME_CATALOG_FILES:
                    bad.append(f"{rel}:{node.lineno} names catalog data {node.value!r}")
            # Path(...) / "catalog": a path into the checkout's catalog/ folder
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Div)
                and isinstance(node.right, ast.Constant)
                and node.right.value == "catalog"
            ):
                bad.append(f"{rel}:{node.lineno} builds a path into catalog/")
    assert not bad, "read catalog data with advisor.catalog (files.data_file, store):\n" + "\n".join(bad)


def test_no_fallbacks_for_the_projects_own_modules():
    assert not (PKG / "bench" / "_fallback.py").exists()
    bad = []
    for rel, tree in _library_modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            caught = [h.type for h in node.handlers if h.type is not None]
            names = {n.id for t in caught for n in ast.walk(t) if isinstance(n, ast.Name)}
            if not names & {"ImportError", "ModuleNotFoundError"}:
                continue
            for _, mod in _imports(ast.Module(body=node.body, type_ignores=[])):
                if mod == "advisor" or mod.startswith("advisor."):
                    bad.append(f"{rel}:{node.lineno} treats {mod} as optional")
    assert not bad, "import the project's own modules directly:\n" + "\n".join(bad)


def test_runtime_catalog_files_are_package_data():
    """setup.py ships catalog/ as `advisor.catalog_data`; pyproject's package-data globs cover every file read."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = cfg["tool"]["setuptools"]["package-data"]["advisor.catalog_data"]
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    assert '"advisor.catalog_data": "catalog"' in setup and '"advisor.catalog_data"]' in setup
    for name in RUNTIME_CATALOG_FILES:
        assert (REPO / "catalog" / name).is_file(), name
        assert any(Path(name).match(g) for g in globs), f"{name} is not matched by package-data {globs}"


@pytest.mark.slow
def test_wheel_carries_the_catalog_data(tmp_path):
    """Build a wheel from a copy of the source (the checkout is not touched) and look inside."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("advisor", "catalog"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."]
    r = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = (src / "dist").glob("advisor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in RUNTIME_CATALOG_FILES:
        assert f"advisor/catalog_data/{name}" in names
    assert "advisor/catalog/files.py" in names


MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 600


def test_no_function_over_100_lines_and_no_module_over_600():
    """The redesign's size limits, kept: a longer function or module is split, not waved through."""
    long_functions, long_modules = [], []
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 40
    for p in files:
        rel = p.relative_to(REPO).as_posix()
        src = p.read_text(encoding="utf-8")
        if len(src.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src, filename=rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not long_modules, "modules over 600 lines:\n" + "\n".join(long_modules)
    assert not long_functions, "functions over 100 lines:\n" + "\n".join(long_functions)
