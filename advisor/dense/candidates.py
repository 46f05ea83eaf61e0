"""The rows of a dense run's ladder, and their latency at the working size.

Rows (`advisor.dense.results` roles):
- zero-shot: pretrained dense models (`advisor.dense.models.dense_candidates`) whose label set shares classes with
  the data (`advisor.dense.labels.match_classes`) and whose weights can be had (offline: the packaged ones);
- architecture: detector/segmenter architectures without usable weights here, timed at the working size only;
- backbone: pretrained image models from the catalog (the classification candidate filter, same constraints),
  ranked by the proxies, each with its random-init twin; and the raw-pixel floor.

``--models`` names the rows instead: dense ids (``torchvision:…``, ``smp:…``, ``pkg:centerface``…) become zero-shot
or architecture rows by the same rules, any other image model a backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advisor.dense.labels import foreground, match_classes
from advisor.dense.results import DenseCandidate, Role
from advisor.dense.types import BOX_TASKS

if TYPE_CHECKING:
    from advisor.recommend.config import RunConfig

log = logging.getLogger(__name__)

RAW_FLOOR_ID = "floor:raw-pixel"  # = advisor.dense.proxies.RAW_PIXELS
TWIN_SUFFIX = " (random init)"
DEFAULT_BACKBONES = 3
# an instance segmenter named in a detection run: a detector whose masks go unused
BOXES_TOO = "instance-segmentation"
BOXES_NOTE = (
    "an instance segmenter run as a detector: its boxes are scored (box AP), its masks unused; its latency "
    "includes the mask pasting"
)
MAX_ARCHITECTURES = 4


def twin_id(model_id: str) -> str:
    """The row id of `model_id`'s random-init twin."""
    return model_id + TWIN_SUFFIX


def base_id(row_id: str) -> str:
    """The model id a row loads (a twin's id without its suffix)."""
    return row_id[: -len(TWIN_SUFFIX)] if row_id.endswith(TWIN_SUFFIX) else row_id


def _dense_rows(
    task: str, classes: Sequence[str], cfg: RunConfig, wanted: set[str] | None, offline: bool
) -> list[DenseCandidate]:
    """Zero-shot and architecture rows from the dense model list."""
    from advisor.dense.models import dense_candidates

    rows: list[DenseCandidate] = []
    n_arch = 0
    include = frozenset(wanted or ())
    lic = None if cfg.license == "any" else cfg.license
    infos = dense_candidates(task, license=lic, include=include)
    if task == "detection" and wanted:  # a named instance segmenter is a detector too: its boxes are scored
        infos += [
            i for i in dense_candidates(BOXES_TOO, license=lic, include=include) if i.model_id in wanted
        ]
    rows += _excluded_by_license(task, include, {i.model_id for i in infos}, cfg.license)
    for info in infos:
        if wanted is not None and info.model_id not in wanted:
            continue
        # an open-vocabulary detector is prompted with the data's class names: it shares them all
        shared = match_classes(classes, classes if info.label_set == "open" else info.classes)
        offline_ok = bool(info.pretrained_available_offline)
        common: dict[str, Any] = {
            "label_set": info.label_set,
            "license": info.license,
            "input_size": list(info.input_size) if info.input_size else None,
        }
        if (
            info.opt_in and shared
        ):  # named by the user: tried, and a failure (e.g. offline) is shown on its row
            rows.append(
                DenseCandidate(info.model_id, Role.ZERO_SHOT, reasons=[info.note or "named"], **common)
            )
        elif shared and (offline_ok or not offline):
            boxes_only = [BOXES_NOTE] if info.task != task else []
            rows.append(DenseCandidate(info.model_id, Role.ZERO_SHOT, reasons=boxes_only, **common))
        elif info.model_id.startswith(("torchvision:", "smp:", "hf:")) and (
            wanted is not None or n_arch < MAX_ARCHITECTURES
        ):
            n_arch += 1
            if info.label_set == "none":
                why = "no label set of its own: its head is trained on your classes (timed only here)"
            else:
                why = (
                    "label set shares no class with the data"
                    if not shared
                    else "weights not reachable offline"
                )
            notes = [why] + ([BOXES_NOTE] if info.task != task else [])
            rows.append(DenseCandidate(info.model_id, Role.ARCH, pretrained=False, reasons=notes, **common))
    return rows


def _excluded_by_license(
    task: str, named: frozenset[str], kept: set[str], license: str
) -> list[DenseCandidate]:
    """Rows for the models `named` that the licence constraint removed, each saying why (never a silent drop)."""
    from advisor.dense.models import dense_candidates, license_problem

    return [
        DenseCandidate(
            i.model_id, Role.NOT_RUN, label_set=i.label_set, license=i.license, pretrained=False,
            error=f"excluded: {i.license} is {license_problem(i.license)}, and --license {license} asks for none",
        )
        for i in dense_candidates(task, include=named)
        if i.model_id in named and i.model_id not in kept
    ]  # fmt: skip


def _named(task: str, cfg: RunConfig, catalog: Any) -> tuple[list[str], list[str], list[DenseCandidate]]:
    """The ``--models`` ids sorted out: dense ids (as the dense loaders take them), backbone ids, and a row with
    the reason for each named id that is a detector or segmenter this run cannot use (never a silent drop, nor a
    detector's checkpoint taken for a backbone)."""
    from advisor.dense.models import find_dense_info, not_dense_reason

    dense: list[str] = []
    backbones: list[str] = []
    refused: list[DenseCandidate] = []
    for mid in cfg.models:
        if (info := find_dense_info(mid)) is not None:
            if info.task == task or (task, info.task) == ("detection", BOXES_TOO):
                dense.append(info.model_id)  # the id as the loaders take it (a weights tag dropped)
            else:
                a = "an" if info.task[0] in "aeiou" else "a"
                other = f"{mid}: {a} {info.task} model, and this run is --task {task} (name it in a --task {info.task} run)"
                refused.append(DenseCandidate(mid, Role.NOT_RUN, pretrained=False, error=other))
        elif (why := not_dense_reason(mid, catalog)) is not None:
            refused.append(DenseCandidate(mid, Role.NOT_RUN, pretrained=False, error=why))
        else:
            backbones.append(mid)
    return dense, backbones, refused


def _backbone_ids(cfg: RunConfig, catalog: Any, offline: bool) -> list[str]:
    """Pretrained image backbones when none are named: the classification filter's best few."""
    from advisor.recommend.candidates import select_candidates

    cands, _excluded = select_candidates("image", cfg.constraints(offline=offline), catalog)
    n = cfg.max_candidates or DEFAULT_BACKBONES
    return [c.model_id for c in cands[:n]]


def choose_rows(
    task: str, classes: Sequence[str], cfg: RunConfig, *, catalog: Any = None, offline: bool | None = None
) -> list[DenseCandidate]:
    """Every row of the ladder for a dense run on data with `classes` under `cfg`'s constraints.

    `offline` (default ``cfg.offline``): only weights that are local count (packaged dense models, cached
    backbones); detectors whose weights would need the network become timed-only architecture rows.
    """
    off = cfg.offline if offline is None else offline
    wanted: set[str] | None = None
    refused: list[DenseCandidate] = []
    if cfg.models:
        dense, backbones, refused = _named(task, cfg, catalog)
        wanted = set(dense)
    else:
        backbones = _backbone_ids(cfg, catalog, off)
    rows = _dense_rows(task, classes, cfg, wanted, off) + refused
    for mid in backbones:
        rows.append(DenseCandidate(mid, Role.BACKBONE))
        rows.append(DenseCandidate(twin_id(mid), Role.TWIN, pretrained=False))
    if cfg.baselines:
        rows.append(DenseCandidate(RAW_FLOOR_ID, Role.FLOOR, pretrained=False))
    return rows


class ModelPool:
    """The backbones a run has loaded, by (model id, pretrained): loaded once, shared by the latency and proxy
    stages, dropped by `clear` when the proxies are done."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._models: dict[tuple[str, bool], Any] = {}

    def get(self, row: DenseCandidate) -> Any:
        """The loaded backbone of a backbone or twin row."""
        from advisor.dense.backbones import load_backbone

        key = (base_id(row.model_id), row.pretrained)
        if key not in self._models:
            self._models[key] = load_backbone(key[0], pretrained=key[1], device=self.device)
        return self._models[key]

    def clear(self) -> None:
        """Forget every loaded model."""
        self._models.clear()


def measure_row_latency(
    row: DenseCandidate,
    size: tuple[int, int],
    *,
    device: str,
    repeats: int,
    pool: ModelPool | None = None,
    classes: Sequence[str] = (),
) -> None:
    """Fill ``row.latency`` (p50/p90 ms per image at `size`, pre/post-processing included) or ``row.error``.

    `classes` (the data's): what an open-vocabulary detector is prompted with while it is timed.
    """
    from advisor.dense.backbone_latency import measure_backbone_latency
    from advisor.errors import AdvisorError

    try:
        if row.role in (Role.BACKBONE, Role.TWIN):
            model = pool.get(row) if pool is not None else base_id(row.model_id)
            row.latency = measure_backbone_latency(
                model, size, pretrained=row.pretrained, device=device, repeats=repeats
            )
        else:
            from advisor.dense.latency import measure_dense_latency
            from advisor.dense.models import load_dense_model

            model = load_dense_model(row.model_id, pretrained=row.role == Role.ZERO_SHOT, device=device)
            prompt = getattr(model, "set_classes", None)  # open vocabulary: its text encoder runs per call
            if model.label_set == "open" and prompt is not None:
                prompt(foreground(classes))
            row.n_params = getattr(model, "n_params", None)
            row.latency = measure_dense_latency(model, size, repeats=repeats)
            if not model.pretrained and model.task in BOX_TASKS:
                row.reasons.append(
                    "timed with random weights: their many low-score boxes can make decoding and NMS slower than "
                    "with trained weights"
                )
    except (AdvisorError, RuntimeError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        row.error = f"could not be timed: {msg}"
        log.info("%s: %s", row.model_id, msg)
