"""The loader settings a sentence-transformers text repo declares: pooling, normalisation, length, prompt.

A published embedding figure (MTEB) is measured with the model's own loader. For repos packaged for
sentence-transformers those settings are files of the repo, and the ``hf:`` text loader follows them so that
advisor's features are the ones the figure was measured on:

- ``modules.json``: the module chain; a ``Pooling`` module's folder holds ``config.json`` with the pooling mode
  (``pooling_mode_cls_token``, ``_mean_tokens``, ``_max_tokens``, ``_lasttoken``), a ``Normalize`` module means
  L2-normalised outputs;
- ``sentence_bert_config.json``: ``max_seq_length``;
- ``config_sentence_transformers.json``: ``prompts`` and ``default_prompt_name`` (the prompt sentence-transformers
  prepends when the caller names none). The advisor's text task is classification, so a prompt named
  ``Classification`` wins over the default: that is the prompt MTEB's sentence-transformers wrapper picks for a
  Classification task that has no prompt of its own name (task-type prompts come before query/passage prompts there).

Only JSON is read (never code). Explicit id options (``?pooling=``, ``?normalize=``, ``?max_length=``, ``?prompt=``)
win over the repo's settings; without a sentence-transformers config the advisor's default (mean over the attention
mask, no normalisation, no prompt) applies, and every result records which settings were used and where they came
from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TASK_PROMPT_NAME = "Classification"  # MTEB's task type of the classification figures the catalog shows
POOLING_MODES = {  # sentence-transformers Pooling config key -> advisor's pooling name
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
SUPPORTED_POOLING = ("mean", "cls", "max", "lasttoken")
DEFAULT_SOURCE = "advisor default (no sentence-transformers config in the repo)"


@dataclass(frozen=True)
class TextLoaderSettings:
    """How a text encoder's token states become one vector, and what is prepended to each text."""

    pooling: str = "mean"
    normalize: bool = False
    max_length: int | None = None
    prompt: str | None = None
    source: str = DEFAULT_SOURCE
    notes: tuple[str, ...] = field(default_factory=tuple)
    prompts_available: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"], d["prompts_available"] = list(self.notes), list(self.prompts_available)
        return d


def _reader(source: str, *, revision: str | None, offline: bool):
    """A function filename -> parsed JSON or None (missing), for a local folder or a hub repo."""
    local = Path(source).expanduser()

    def from_dir(name: str) -> Any:
        p = local / name
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def from_hub(name: str) -> Any:
        from advisor.models.hub import hf_cached_file

        p = hf_cached_file(source, name, revision=revision)
        if p is None and not offline:
            try:
                from huggingface_hub import hf_hub_download

                p = Path(hf_hub_download(source, name, revision=revision))
            except Exception:  # absent from the repo (the common case) or unreachable: no such setting
                p = None
        return json.loads(p.read_text(encoding="utf-8")) if p is not None and p.is_file() else None

    return from_dir if local.is_dir() else from_hub


def read_st_settings(source: str, *, revision: str | None = None, offline: bool = True) -> TextLoaderSettings:
    """The repo's sentence-transformers settings (defaults when it has none; a malformed file is noted, not fatal)."""
    read = _reader(source, revision=revision, offline=offline)
    try:
        modules = read("modules.json")
    except (OSError, ValueError) as e:
        return TextLoaderSettings(notes=(f"modules.json unreadable ({e}); advisor defaults used",))
    if not isinstance(modules, list):
        return TextLoaderSettings()
    notes: list[str] = []
    pooling, normalize = "mean", False
    for mod in modules:
        kind = str((mod or {}).get("type", "")) if isinstance(mod, dict) else ""
        if kind.endswith("Normalize"):
            normalize = True
        elif kind.endswith("Pooling"):
            pooling = _pooling(read, str(mod.get("path") or ""), notes)
    max_length: int | None = None
    prompt: str | None = None
    names: tuple[str, ...] = ()
    try:
        sb = read("sentence_bert_config.json") or {}
        if isinstance(sb.get("max_seq_length"), int) and sb["max_seq_length"] > 0:
            max_length = int(sb["max_seq_length"])
        st = read("config_sentence_transformers.json") or {}
        prompts: dict[str, Any] = st["prompts"] if isinstance(st.get("prompts"), dict) else {}
        names = tuple(sorted(str(k) for k in prompts))
        default = st.get("default_prompt_name")
        if prompts.get(TASK_PROMPT_NAME):
            prompt = str(prompts[TASK_PROMPT_NAME])
            notes.append(
                f"the repo's {TASK_PROMPT_NAME!r} prompt is used (the prompt MTEB uses for classification tasks)"
            )
        elif default and default in prompts and prompts[default]:
            prompt = str(prompts[default])
    except (OSError, ValueError, AttributeError) as e:
        notes.append(f"a sentence-transformers config file is unreadable ({e}); its settings were not used")
    return TextLoaderSettings(
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        prompt=prompt,
        source="the repo's sentence-transformers config (modules.json)",
        notes=tuple(notes),
        prompts_available=names,
    )


def _pooling(read: Any, path: str, notes: list[str]) -> str:
    try:
        cfg = read(f"{path}/config.json" if path else "config.json") or {}
    except (OSError, ValueError) as e:
        notes.append(f"pooling config unreadable ({e}); mean pooling used")
        return "mean"
    modes = [POOLING_MODES[k] for k in POOLING_MODES if cfg.get(k)]
    if len(modes) == 1 and modes[0] in SUPPORTED_POOLING:
        return modes[0]
    if modes:
        notes.append(
            f"the repo pools by {' + '.join(modes)}, which advisor does not implement; mean pooling used, so "
            "features differ from the published protocol"
        )
    return "mean"


def resolve(repo: TextLoaderSettings, params: dict[str, str]) -> TextLoaderSettings:
    """The settings to use: explicit id options over the repo's settings."""
    over: dict[str, Any] = {}
    if "pooling" in params:
        over["pooling"] = params["pooling"]
    if "normalize" in params:
        over["normalize"] = str(params["normalize"]).strip().lower() in {"1", "true", "yes", "on"}
    if "max_length" in params:
        over["max_length"] = int(params["max_length"])
    if "prompt" in params:
        over["prompt"] = params["prompt"] or None
    if not over:
        return repo
    d = repo.to_dict() | over
    d["source"] = f"{repo.source}; overridden by the id's options ({', '.join(sorted(over))})"
    d["notes"], d["prompts_available"] = tuple(d["notes"]), tuple(d["prompts_available"])
    return TextLoaderSettings(**d)
