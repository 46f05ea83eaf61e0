"""How large the probed shortlist must be: recall and regret as the product probes, per shortlist size.

    python benchmarks/ranking/shortlist_study.py fashion_mnist banking77 bccd_crops digits fsdd membrane_patches textures

The product probes the top ``--shortlist`` candidates of a shortlist predictor and, with ``--baselines`` (the
default), every no-pretraining floor; random-init twins are the benchmark's negative controls, never candidates.
So, for each subsample of each target in run.py's records (cached by ``run.py``; computed here when absent):

- recall@k: the ground-truth best zoo member is among the probed models (top k candidates + the floors);
- near@k: a model within 1 accuracy point of the ground-truth best is among them (ground truth has test-set noise
  of about that size, so a miss inside it is a tie, not a loss);
- oracle regret@k: ground-truth accuracy lost by probing only those (best overall minus best probed), points;
- final regret@k: the ground-truth accuracy lost by the product's pick among the probed models (the paired tie
  groups of the subsample probe over the probed set, then ``TIE_ORDER_SIGNAL`` inside the leading group).

Every shortlist predictor below is a fixed, pre-declared method of run.py (no selection on these targets);
writes ``shortlist_study.json`` beside this file and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("ADVISOR_CACHE_DIR", "/tmp/advisor-ranking-cache")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

KS = (1, 2, 3, 5, 8, 10, 99)
NEAR_POINTS = 1.0
PREDICTORS = (
    "advisor: scores stage (current WEIGHTS)",
    "score: ncm_loo",
    "score: logme",
    "prior: ImageNet top-1",
)


def _pick(rec: dict, sub: dict, probed: list[int]) -> int:
    """The product's final pick among `probed` (indices into rec["keys"]): the leading tie group, then the tie order."""
    import rb_rules

    from advisor.recommend.ranking import TIE_ORDER_SIGNAL

    groups = rb_rules.tie_groups_of(rec, sub, [rec["keys"][i] for i in probed])
    assert groups is not None, f"{rec['name']}: a probed model has no subsample probe"
    lead = [i for i, g in zip(probed, groups, strict=True) if g == 1]
    inner = {i: sub["signals"][rec["keys"][i]]["values"].get(TIE_ORDER_SIGNAL) for i in lead}
    return max(lead, key=lambda i: (-np.inf if inner[i] is None else inner[i], -i))


def study(records: list[dict], methods: dict[str, dict], sizes=(10, 30)) -> dict:
    import rb_metrics as M
    import run

    out: dict = {"ks": list(KS), "predictors": {}}
    for pname in PREDICTORS:
        spec = {"x": methods[pname]}
        per_size: dict = {}
        for n in sizes:
            per_t: dict = {}
            for rec in records:
                if n not in rec["spec"]["sub_sizes"]:
                    continue
                kinds = {m["key"]: m["kind"] for m in rec["models"]}
                keys = rec["keys"]
                cand = [i for i, k in enumerate(keys) if kinds[k] == "pretrained"]
                floors = [i for i, k in enumerate(keys) if kinds[k] == "floor"]
                acc: dict[str, list[float]] = {
                    f"{m}@{k}": [] for m in ("recall", "near", "oracle", "final") for k in KS
                }
                for fold in rec["folds"]:
                    truth = np.array([fold["gt"][k]["accuracy"] for k in keys])
                    best = int(np.argmax(truth))
                    for sub in fold["subsamples"]:
                        if sub["per_class"] != n:
                            continue
                        s = M._clean(run.method_scores(rec, sub, spec)["x"])
                        order = sorted(cand, key=lambda i: (-s[i], i))
                        for k in KS:
                            probed = order[:k] + floors
                            acc[f"recall@{k}"].append(float(best in probed))
                            lost = 100 * float(truth[best] - truth[probed].max())
                            acc[f"near@{k}"].append(float(lost <= NEAR_POINTS))
                            acc[f"oracle@{k}"].append(lost)
                            acc[f"final@{k}"].append(
                                100 * float(truth[best] - truth[_pick(rec, sub, probed)])
                            )
                per_t[rec["name"]] = {
                    "role": rec["role"],
                    "n_candidates": len(cand),
                    "n_floors": len(floors),
                    **{k: float(np.mean(v)) for k, v in acc.items() if v},
                }
            mean = {
                k: float(np.mean([t[k] for t in per_t.values()]))
                for k in next(iter(per_t.values()))
                if "@" in k
            }
            per_size[str(n)] = {"per_target": per_t, "mean": mean}
        out["predictors"][pname] = per_size
    return out


def table(res: dict) -> str:
    ks = res["ks"]
    head = " | ".join("all" if k == 99 else str(k) for k in ks)
    lines = []
    for pname, per_size in res["predictors"].items():
        for n, block in per_size.items():
            m = block["mean"]
            lines.append(f"\n**{pname}, {n} per class** (mean over {len(block['per_target'])} targets)\n")
            lines.append(f"| shortlist k | {head} |")
            lines.append("|---|" + "---:|" * len(ks))
            lines.append("| recall@k | " + " | ".join(f"{m[f'recall@{k}']:.2f}" for k in ks) + " |")
            lines.append("| near@k (within 1 pt) | " + " | ".join(f"{m[f'near@{k}']:.2f}" for k in ks) + " |")
            lines.append(
                "| oracle regret@k, pts | " + " | ".join(f"{m[f'oracle@{k}']:.1f}" for k in ks) + " |"
            )
            lines.append("| final regret@k, pts | " + " | ".join(f"{m[f'final@{k}']:.1f}" for k in ks) + " |")
    return "\n".join(lines)


def main(names: list[str]) -> dict:
    import torch

    torch.set_num_threads(2)
    import rb_targets as T
    import rb_zoo as Z
    import run

    cache = Path(os.environ["ADVISOR_CACHE_DIR"])
    records = [run.run_target(T.TARGETS[n], Z.ZOOS[T.TARGETS[n].modality], cache) for n in names]
    methods, _ = run.build_methods(records)
    res = study(records, methods)
    res["targets"] = names
    res["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res["environment"] = run.environment()
    (HERE / "shortlist_study.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(table(res))
    return res


if __name__ == "__main__":
    main(
        sys.argv[1:]
        or ["fashion_mnist", "banking77", "bccd_crops", "digits", "fsdd", "membrane_patches", "textures"]
    )
