"""Score the final-order variants and the key references on cached target records, without the rule study.

    python benchmarks/ranking/score_fixed.py fashion_mnist banking77 bccd_crops digits fsdd membrane_patches textures

Uses run.py's records (computed and cached by `run.py`; computed here when absent), its methods and its bootstrap;
writes fixed_methods.json beside this file and prints the summary (all / dev / confirm targets, 10 and 30 per
class) and the shortlist recall of the product's shortlist predictor.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ADVISOR_CACHE_DIR", "/tmp/advisor-ranking-cache")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

torch.set_num_threads(2)
import rb_targets as T  # noqa: E402 (after sys.path)
import rb_zoo as Z  # noqa: E402
import run  # noqa: E402

names = sys.argv[1:]
cache = Path(os.environ["ADVISOR_CACHE_DIR"])
records = [run.run_target(T.TARGETS[n], Z.ZOOS[T.TARGETS[n].modality], cache) for n in names]
methods, score_names = run.build_methods(records)
keep = [
    run.FINAL_ORDER_METHOD,
    "tie groups, then LogME",
    "tie groups, then scores stage",
    "advisor: probe stage (subsample probe)",
    "advisor: scores stage (current WEIGHTS)",
    "score: ncm_loo",
    "score: logme",
    "prior: ImageNet top-1",
]
ms = {k: methods[k] for k in keep}
scored = {r["name"]: run.score_target(r, ms, n_boot=run.N_BOOT) for r in records}
out = {"targets": names, "roles": {r["name"]: r["role"] for r in records}, "summary": {}, "per_target": {}}
for grp, tn in (
    ("all", names),
    ("dev", [r["name"] for r in records if r["role"] == "dev"]),
    ("confirm", [r["name"] for r in records if r["role"] == "confirm"]),
):
    out["summary"][grp] = {n: {m: run.aggregate(scored, tn, n, m) for m in ms} for n in ("10", "30")}
for t in names:
    out["per_target"][t] = {
        n: {m: {k: scored[t][n][m].get(k) for k in ("tau_w", "regret")} for m in ms}
        for n in ("10", "30")
        if n in scored[t]
    }
out["shortlist_recall"] = run.shortlist_recall(records, methods, [10, 30])
out["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
out["environment"] = run.environment()
(Path(__file__).resolve().parent / "fixed_methods.json").write_text(
    json.dumps(out, indent=1, default=str) + "\n"
)
for grp in ("all", "dev", "confirm"):
    for n in ("10", "30"):
        print(grp, n)
        for m in ms:
            a = out["summary"][grp][n][m]
            if a:
                print(
                    f"  {m}: tau_w {a['tau_w']:.2f} {[round(x, 2) for x in (a.get('tau_w_ci') or [])]} regret {100 * a['regret']:.1f}"
                )
print(
    json.dumps(out["shortlist_recall"]["sizes"]["30"]["mean"]),
    json.dumps(out["shortlist_recall"]["sizes"]["10"]["mean"]),
)
