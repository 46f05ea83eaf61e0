"""The ``--finetune-top`` check of `advisor recommend`: fine-tune the best candidates and compare with the probe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor.errors import AdvisorError

if TYPE_CHECKING:
    from advisor.recommend.run import RunConfig


def _finetune_check(dataset, top: list, advice: dict[str, Any], cfg: RunConfig, say) -> list[dict[str, Any]]:
    """Fine-tune the best `cfg.finetune_top` candidates and compare each with its linear probe.

    The unfreezing setting is the strategy advice's (``last-2`` when the advice is a frozen linear probe, so that
    the check can contradict it). Runs live in the cache keyed by model, data and settings, so a rerun reuses
    them. A candidate that cannot be fine-tuned (e.g. an ONNX graph) is reported with the reason, not raised.
    """
    from advisor.finetune import FinetuneConfig, compare_with_probe, finetune
    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    unfreeze = cfg.finetune_unfreeze or advice.get("unfreeze") or "last-2"
    if unfreeze == "head" and not cfg.finetune_unfreeze:
        unfreeze = "last-2"
    out: list[dict[str, Any]] = []
    for i, c in enumerate(top, 1):
        say(f"[{i}/{len(top)}] fine-tune ({unfreeze}, {cfg.finetune_epochs} epochs): {c.model_id}")
        ft_cfg = FinetuneConfig(
            unfreeze=unfreeze,
            epochs=cfg.finetune_epochs,
            budget_minutes=cfg.finetune_budget_minutes,
            device=cfg.device,
            seed=cfg.seed,
        )
        key = stable_hash({"model": c.model_id, "data": dataset.fingerprint, "config": ft_cfg.to_dict()})
        run_dir = cache_dir("finetune", key)
        entry: dict[str, Any] = {"model_id": c.model_id, "unfreeze": unfreeze, "epochs": cfg.finetune_epochs}
        try:
            res = finetune(
                dataset,
                c.model_id,
                ft_cfg,
                out_dir=run_dir,
                resume=(run_dir / "result.json").exists(),
                offline=cfg.offline or None,
            )
        except AdvisorError as e:
            entry |= {"status": "failed", "error": e.message}
            out.append(entry)
            continue
        cmp = compare_with_probe(res, c.probe["accuracy"], c.probe.get("accuracy_ci"))
        rd = res.to_dict()
        entry |= {
            "status": "done",
            "finetune_accuracy": cmp["finetune_accuracy"],
            "finetune_ci": cmp["finetune_ci"],
            "probe_accuracy": cmp["probe_accuracy"],
            "probe_ci": cmp["probe_ci"],
            "gain_pp": cmp["gain_pp"],
            "verdict": cmp["verdict"],
            "paid_off": cmp["paid_off"],
            "summary": f"{c.model_id}: {cmp['summary']}",
            "seconds": rd.get("total_seconds"),
            "stopped_reason": rd.get("stopped_reason"),
            "protocol": "fine-tune: held-out stratified validation split of the whole dataset; probe: "
            "cross-validation on the subsample",
        }
        out.append(entry)
    return out
