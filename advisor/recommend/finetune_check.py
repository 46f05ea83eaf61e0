"""The ``--finetune-top`` check of `advisor recommend`: fine-tune the best candidates and compare with the probe."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from advisor.errors import AdvisorError

if TYPE_CHECKING:
    from advisor.data import Dataset
    from advisor.recommend.config import RunConfig
    from advisor.recommend.results import CandidateResult


PROTOCOL_NOTE = (
    "fine-tune: held-out stratified (with groups: whole groups held out) validation split of the whole dataset "
    "(or its own train/val split); "
    "probe: the recommend run's evaluation protocol on the subsample"
)


def finetune_check(
    dataset: Dataset,
    top: Sequence[CandidateResult],
    advice: Mapping[str, Any],
    cfg: RunConfig,
    say: Callable[[str], None],
    *,
    runtimes: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune the best `cfg.finetune_top` candidates and compare each with its linear probe.

    The unfreezing setting is the strategy advice's (``last-2`` when the advice is a frozen linear probe, so that
    the check can contradict it). Runs live in the cache keyed by model, data and settings, so a rerun reuses
    them. A candidate that cannot be fine-tuned (an ONNX/TFLite source, by `untrainable_reason` on its file name
    and the runtime in `runtimes`) is reported as skipped without loading it; other failures are reported with
    the reason, not raised. Each completed entry records the epochs that ran.
    """
    from advisor.finetune import FinetuneConfig, untrainable_reason

    unfreeze = cfg.finetune_unfreeze or advice.get("unfreeze") or "last-2"
    if unfreeze == "head" and not cfg.finetune_unfreeze:
        unfreeze = "last-2"
    out: list[dict[str, Any]] = []
    for i, c in enumerate(top, 1):
        entry: dict[str, Any] = {"model_id": c.model_id, "unfreeze": unfreeze, "epochs": cfg.finetune_epochs}
        reason = untrainable_reason(c.model_id, (runtimes or {}).get(c.model_id))
        if reason is not None:
            out.append(entry | {"status": "skipped", "error": reason, "summary": f"not fine-tuned: {reason}"})
            continue
        say(f"[{i}/{len(top)}] fine-tune ({unfreeze}, {cfg.finetune_epochs} epochs): {c.model_id}")
        same = {
            k: getattr(cfg, k) for k in ("device", "seed", "group_column", "group_pattern")
        }  # as the run's
        ft_cfg = FinetuneConfig(
            unfreeze=unfreeze, epochs=cfg.finetune_epochs, budget_minutes=cfg.finetune_budget_minutes, **same
        )
        try:
            entry |= _run_one(dataset, c, ft_cfg, offline=cfg.offline)
        except AdvisorError as e:
            entry |= {"status": "failed", "error": e.message}
        out.append(entry)
    return out


def _run_one(dataset: Dataset, c: CandidateResult, ft_cfg: Any, *, offline: bool) -> dict[str, Any]:
    """Fine-tune one candidate (resuming its cached run) and compare it with its probe."""
    from advisor.finetune import compare_with_probe, finetune
    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    key = stable_hash({"model": c.model_id, "data": dataset.fingerprint, "config": ft_cfg.to_dict()})
    run_dir = cache_dir("finetune", key)
    res = finetune(
        dataset,
        c.model_id,
        ft_cfg,
        out_dir=run_dir,
        resume=(run_dir / "result.json").exists(),
        offline=offline or None,
    )
    probe = c.probe or {}
    cmp = compare_with_probe(res, probe["accuracy"], probe.get("accuracy_ci"))
    return {
        "status": "done",
        "epochs_run": res.epochs_run,
        "best_epoch": res.best_epoch,
        "finetune_accuracy": cmp["finetune_accuracy"],
        "finetune_ci": cmp["finetune_ci"],
        "probe_accuracy": cmp["probe_accuracy"],
        "probe_ci": cmp["probe_ci"],
        "gain_pp": cmp["gain_pp"],
        "verdict": cmp["verdict"],
        "paid_off": cmp["paid_off"],
        "summary": f"{c.model_id}: {cmp['summary']}",
        "seconds": res.total_seconds,
        "stopped_reason": res.stopped_reason,
        "protocol": PROTOCOL_NOTE,
    }


_finetune_check = finetune_check  # the name `advisor.recommend.run` imports
