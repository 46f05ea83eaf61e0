"""Shared CLI option types (`Annotated` aliases), the command class with hidden deprecated spellings, and `--debug`.

One name and one meaning per option across commands. Short flags:

- ``-d`` dataset, ``-m`` model id(s), ``-b`` batch size(s), ``-o`` output file or folder, ``-f`` output format,
  ``-u`` what to unfreeze, ``-e`` epochs, ``-h`` help.

Old spellings still work, hidden from ``--help``, with a deprecation note on stderr (`DEPRECATED`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperCommand

from advisor.cli._output import FormatOption, OutputFormat, warn
from advisor.errors import UsageError

if TYPE_CHECKING:
    from typer._click.core import Context  # the click that typer runs on (typer vendors its own)

__all__ = [
    "DEPRECATED",
    "AdvisorCommand",
    "BatchSizeOpt",
    "BenchOpt",
    "DataOpt",
    "DeviceOpt",
    "RuntimeOpt",
    "ExecutorOpt",
    "FormatOpt",
    "GroupColumnOpt",
    "IgnoreIndexOpt",
    "LabelColumnOpt",
    "LicenseOpt",
    "MaxParamsOpt",
    "MaxPerClassOpt",
    "MaxSamplesOpt",
    "MaybeDataOpt",
    "ModalityOpt",
    "ModelOpt",
    "ModelsOpt",
    "OfflineOpt",
    "OutputFormat",
    "PretrainedOpt",
    "ProgressOpt",
    "RayAddressOpt",
    "RayShipDataOpt",
    "ScoresOpt",
    "SeedOpt",
    "SplitOpt",
    "TaskOpt",
    "TextColumnOpt",
    "ThreadsOpt",
    "WorkersOpt",
    "dataset_options",
    "parse_count",
    "parse_int_list",
    "split_list",
]

DEBUG_META_KEY = "advisor.debug"

# ----------------------------------------------------------------------------------------------- the aliases
FormatOpt = FormatOption
_DATA = typer.Option(
    "--data", "-d", help="Dataset: class folders, CSV/TSV/JSONL table or manifest (`advisor data profile`)."
)
DataOpt = Annotated[Path, _DATA]
MaybeDataOpt = Annotated[Path | None, _DATA]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model id: timm:..., torchvision:..., hf:org/name, pkg:name, local:/path/file."
    ),
]
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option("--models", "-m", help="Candidate ids or local model files (comma-separated or repeated)."),
]
ScoresOpt = Annotated[
    str | None,
    typer.Option(
        "--scores", help="Comma-separated transferability score names (`advisor score --help` lists them)."
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps.")
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Samples per forward pass.", min=1)]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="Runtime of the feature forward pass: eager (as loaded) | auto (the fastest one equivalent to eager, "
        "by a short timed trial) | channels-last | onnxruntime (CPU) | compile.",
    ),
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="Data-loading worker processes (0: the main process).", min=0)
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the stratified subsample and every seeded step.")
]
MaxPerClassOpt = Annotated[
    int | None, typer.Option("--max-per-class", help="Cap per class (seeded, stratified).")
]
MaxSamplesOpt = Annotated[
    int | None, typer.Option("--max-samples", help="Cap on the total (seeded, stratified).")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never touch the network; use cached weights only.")
]
PretrainedOpt = Annotated[
    bool,
    typer.Option(
        "--pretrained/--random-init",
        help="Published weights, or random ones (nothing downloaded; smoke tests).",
    ),
]

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress on stderr.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU intra-op threads while timing (torch.set_num_threads).")
]
MaxParamsOpt = Annotated[
    str | None, typer.Option("--max-params", help="Largest parameter count, e.g. 25M or 1.5B.")
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        help="classification, detection, instance-segmentation or segmentation (default: detected from the data).",
    ),
]
BenchOpt = Annotated[
    bool, typer.Option("--bench/--no-bench", help="Measure latency and memory of the candidates.")
]
IgnoreIndexOpt = Annotated[
    int | None,
    typer.Option("--ignore-index", help="Segmentation: the mask value not scored (default 255, as VOC)."),
]


ExecutorOpt = Annotated[
    Literal["serial", "ray"],
    typer.Option(
        "--executor",
        help="Where each candidate's features + scores run: serial (here, in order) or ray (Ray tasks; "
        "pip install 'advisor\\[ray]').",  # \\[: Rich markup would swallow [ray]
    ),
]
RayShipDataOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-ship-data",
        metavar="auto|always|never",
        help="With --executor ray: send the subsample's files through Ray's object store (always), read the "
        "dataset by path on every node (never: a shared filesystem), or ship when the cluster has several nodes "
        "(auto, the default).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDR",
        help="With --executor ray: the cluster to join (auto, ray://host:port); default a local instance.",
    ),
]


LicenseOpt = Annotated[
    Literal["any", "permissive", "commercial"],  # what the weights' license must allow
    typer.Option(
        "--license",
        help="any | permissive | commercial (commercial use without copyleft obligations: GPL/AGPL and other "
        "copyleft, non-commercial and unknown licenses excluded).",
    ),
]

# The dataset options: one declaration each, gathered into a `DatasetSpec` by the command.
ModalityOpt = Annotated[
    str | None, typer.Option("--modality", help="Force image, text or audio (default: detected).")
]
TextColumnOpt = Annotated[
    str | None, typer.Option("--text-column", help="Text column of a table (default: text, ...).")
]
LabelColumnOpt = Annotated[
    str | None, typer.Option("--label-column", help="Label column (default: label, category, intent, ...).")
]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Only this split: train, val or test.")]
SplitColumnOpt = Annotated[
    str | None,
    typer.Option("--split-column", help="Table/manifest column with each row's split (default: split, subset, fold_name)."),
]  # fmt: skip
GroupColumnOpt = Annotated[
    str | None,
    typer.Option("--group-column", help="Table/manifest column with each sample's group (speaker, patient): group-aware folds."),
]  # fmt: skip
GroupPatternOpt = Annotated[
    str | None,
    typer.Option(
        "--group-pattern",
        help="Regex on file names whose first group (else the match) is the sample's group.",
    ),
]


def split_list(values: str | list[str] | None) -> tuple[str, ...]:
    """Comma-separated and/or repeated values as one tuple, blanks dropped: ['a,b', 'c'] -> ('a', 'b', 'c')."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else values
    return tuple(x.strip() for v in items for x in v.split(",") if x.strip())


_DATASET_OPTIONS = {
    "modality": ModalityOpt,
    "text_column": TextColumnOpt,
    "label_column": LabelColumnOpt,
    "split": SplitOpt,
    "group_column": GroupColumnOpt,
    "split_column": SplitColumnOpt,
}


def dataset_options(
    path: Any, *fields: str, name: str = "data"
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the dataset as one value: its ``dataset: DatasetSpec`` parameter becomes the parameter
    `name` typed `path` (an `Annotated` argument or option) plus the dataset options `fields` (all six by default:
    modality, text_column, label_column, split, group_column, split_column), and the command receives them as a
    `DatasetSpec`.
    """
    names = fields or tuple(_DATASET_OPTIONS)

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        sig = inspect.signature(fn)  # annotations are strings (`from __future__ import annotations`)
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.name != "dataset":  # `DatasetSpec` itself is never evaluated: the CLI imports it on use
                ann = eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation
                params.append(p.replace(annotation=ann))
                continue
            params.append(inspect.Parameter(name, p.POSITIONAL_OR_KEYWORD, annotation=path))
            params += [
                inspect.Parameter(n, p.KEYWORD_ONLY, default=None, annotation=_DATASET_OPTIONS[n])
                for n in names
            ]
        # typer wants the required parameters first, as in a def
        params.sort(key=lambda q: q.default is not inspect.Parameter.empty)
        params = [q.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for q in params]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            from advisor.data.spec import DatasetSpec

            spec = DatasetSpec(kwargs.pop(name), **{n: kwargs.pop(n) for n in names})
            fn(dataset=spec, **kwargs)

        del command.__wrapped__  # typer reads the signature below, not the wrapped function's
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {q.name: q.annotation for q in params}
        return command

    return decorate


# ----------------------------------------------------------------------------------------------- old spellings
# command name -> {old spelling: the option's name now}. Hidden from --help; a note on stderr when used.
DEPRECATED: dict[str, dict[str, str]] = {
    "score": {"--metrics": "--scores", "-m": "--scores"},
    "features": {"--num-workers": "--workers"},
    "profile": {"-m": "--modality"},
    "sample": {"-m": "--modality"},
    "report": {"--output": "--out"},
}


class AdvisorCommand(TyperCommand):
    """A command that takes the hidden ``--debug`` flag (the error boundary then re-raises) and rewrites the
    deprecated spellings in `DEPRECATED` to the current ones, with a note on stderr."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._rewrite(ctx, args, DEPRECATED.get(self.name or "", {})))

    def _rewrite(self, ctx: Context, args: list[str], aliases: dict[str, str]) -> list[str]:
        takes_value = {
            o
            for p in self.params
            if p.param_type_name == "option" and not getattr(p, "is_flag", False)
            for o in p.opts + p.secondary_opts
        }
        out: list[str] = []
        after_valued = False  # the previous token was an option that takes a value: this token is that value
        for i, tok in enumerate(args):
            if tok == "--":
                out += args[i:]
                break
            name, eq, value = tok.partition("=")
            if not after_valued and tok == "--debug":
                ctx.meta[DEBUG_META_KEY] = True
                continue
            if not after_valued and name in aliases:
                warn(f"{name} is deprecated; use {aliases[name]}")
                name = aliases[name]
                tok = name + eq + value
            out.append(tok)
            after_valued = not after_valued and not eq and name in takes_value
        return out


# ----------------------------------------------------------------------------------------------- value parsing
_COUNT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmbg]?)\s*$", re.IGNORECASE)
_COUNT_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(text: str | None, option: str = "--max-params") -> float | None:
    """A count such as ``25M``, ``1.5B``, ``300k``, ``2.5e7`` or ``25_000_000`` (None passes through).

    Raises:
        UsageError: the text is not such a count.
    """
    if text is None:
        return None
    m = _COUNT_RE.match(text.replace("_", ""))
    if not m:
        raise UsageError(
            f"{option} {text!r}: cannot read a parameter count", hint="e.g. 25M, 1.5B, 300k or 2.5e7"
        )
    return float(m.group(1)) * _COUNT_SCALE[m.group(2).lower()]


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """``1,8,32`` -> (1, 8, 32).

    Raises:
        UsageError: not a non-empty comma-separated list of integers.
    """
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a comma-separated list of integers", hint="e.g. 1,8,32"
        ) from None
    if not vals:
        raise UsageError(f"{option} is empty", hint="e.g. 1,8,32")
    return vals
