"""What a sweep runs: datasets x models with one set of recommend options, from arguments or a TOML/YAML file.

A sweep file (TOML; YAML with the same keys when PyYAML is installed)::

    models = ["pkg:efficientnet_lite0", "pkg:mobilenetv3_small_100"]   # optional: else each dataset's defaults
    out = "my-sweep"                                                   # optional (default: advisor-sweep)
    datasets = ["data/parts", "data/defects"]                          # short form, or:

    [options]            # `advisor recommend` options for every dataset (RunConfig fields)
    max_samples = 300
    device = "cpu"

    [[dataset]]          # one table a dataset: its path, an optional name, its own models and options
    path = "data/intents.csv"
    name = "intents"
    models = ["pkg:all-MiniLM-L6-v2"]
    options = { text_column = "text", label_column = "label" }

Relative paths are read from the file's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import UsageError

NOT_OPTIONS = ("data", "out", "models", "dry_run")  # the sweep sets these per dataset itself


@dataclass(frozen=True)
class SweepDataset:
    """One dataset of a sweep: its path, the name of its run folder, and options of its own (text_column, ...)."""

    path: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()  # its own candidates (instead of the sweep's): datasets of other modalities


@dataclass(frozen=True)
class SweepConfig:
    """Datasets x models, every dataset with the same recommend options (its own ones added on top).

    Attributes:
        datasets: the datasets, each run in its own folder ``<out>/runs/<name>``.
        models: the candidates of every dataset (empty: each dataset's default candidates).
        out: the sweep folder (``sweep.json``, ``sweep.csv``, ``sweep.md``, ``sweep.html`` and ``runs/``).
        options: `advisor.recommend.run.RunConfig` fields for every dataset (device, max_samples, seed, ...).
    """

    datasets: tuple[SweepDataset, ...]
    models: tuple[str, ...] = ()
    out: str = "advisor-sweep"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise UsageError(
                "a sweep needs at least one dataset", hint="give --data DIR (repeatable) or a file"
            )
        names = [d.name for d in self.datasets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UsageError(
                f"two datasets of the sweep are named {dup[0]!r}", hint="give each a distinct name"
            )
        for opts in (self.options, *(d.options for d in self.datasets)):
            bad = sorted(set(opts) & set(NOT_OPTIONS))
            if bad:
                raise UsageError(
                    f"the sweep sets {bad[0]!r} itself",
                    hint="use the top-level models/out keys and [[dataset]] path",
                )


def slug(text: str) -> str:
    """A folder name from a dataset path or name (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "dataset"


def sweep_config(
    datasets: Sequence[str | SweepDataset],
    *,
    models: Sequence[str] = (),
    out: str | Path = "advisor-sweep",
    **options: Any,
) -> SweepConfig:
    """A `SweepConfig` from dataset paths (named after their folders, numbered where two share a name)."""
    items: list[SweepDataset] = []
    taken: set[str] = set()
    for d in datasets:
        if isinstance(d, SweepDataset):
            items.append(d)
            taken.add(d.name)
            continue
        base = slug(Path(d).stem if Path(d).suffix else Path(d).name)
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        items.append(SweepDataset(str(d), name))
    opts = {k: v for k, v in options.items() if v is not None}
    return SweepConfig(tuple(items), tuple(models), str(out), opts)


def load_sweep_file(path: str | Path) -> SweepConfig:
    """Read a sweep file (``.toml``; ``.yaml``/``.yml`` with PyYAML).

    Raises:
        UsageError: the file is missing, does not parse, or has unknown keys or wrong types (named, one line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(
            f"{p}: cannot read the sweep file ({e.strerror or e})", hint="check the path"
        ) from None
    data = _parse(p, text)
    unknown = sorted(set(data) - {"models", "out", "options", "datasets", "dataset"})
    if unknown:
        raise UsageError(
            f"{p}: unknown key {unknown[0]!r}", hint="keys: models, out, options, datasets, [[dataset]]"
        )
    base = p.parent
    short = _list(p, data, "datasets")
    entries: list[str | SweepDataset] = [str(base / x) for x in short if isinstance(x, str)]
    # a table among `datasets` ([[datasets]]) is read as a [[dataset]] table: it was once made a path of its text
    tables = [x for x in short if not isinstance(x, str)] + _list(p, data, "dataset")
    for i, t in enumerate(tables, 1):
        if not isinstance(t, dict) or "path" not in t:
            raise UsageError(f"{p}: [[dataset]] {i} has no path", hint='add path = "DIR"')
        extra = sorted(set(t) - {"path", "name", "options", "models"})
        if extra:
            raise UsageError(
                f"{p}: [[dataset]] {i}: unknown key {extra[0]!r}", hint="keys: path, name, models, options"
            )
        d_path = str(base / str(t["path"]))
        name = slug(str(t.get("name") or Path(d_path).name))
        own = tuple(str(m) for m in _list(p, t, "models"))
        entries.append(
            SweepDataset(d_path, name, _table(p, t.get("options"), f"[[dataset]] {i} options"), own)
        )
    models = [str(m) for m in _list(p, data, "models")]
    out = data.get("out")
    out_dir = str(base / str(out)) if out else str(base / "advisor-sweep")
    options = _table(p, data.get("options"), "options")
    taken = sorted(set(options) & set(NOT_OPTIONS))
    if taken:
        raise UsageError(f"{p}: the sweep sets {taken[0]!r} itself", hint="use the top-level models/out keys")
    return sweep_config(entries, models=models, out=out_dir, **options)


def _parse(p: Path, text: str) -> dict[str, Any]:
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError(
                f"{p}: reading YAML needs PyYAML", hint="pip install pyyaml, or use TOML"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{p}: not valid YAML ({str(e).splitlines()[0]})", hint="fix the file") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{p}: not valid TOML ({e})", hint="fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{p}: a sweep file is a table of keys", hint="see `advisor sweep --help`")
    return data


def _list(p: Path, data: dict[str, Any], key: str) -> list[Any]:
    v = data.get(key, [])
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list):
        raise UsageError(f"{p}: {key} must be a list", hint=f'e.g. {key} = ["..."]')
    return v


def _table(p: Path, v: Any, what: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise UsageError(f"{p}: {what} must be a table of recommend options", hint="e.g. max_samples = 300")
    return dict(v)
