"""Check the bench harness against a bare hand-timed torch loop: same model, same settings, same process,
interleaved rounds (harness then manual, then manual then harness, ...) so machine-load drift hits both alike.
Goal: harness median latency within +-5 % of the manual loop's. Writes
benchmarks/results/bench_harness_vs_manual-<cpu>-<threads>t-torch<version>.{json,md}.

Usage:
    python benchmarks/bench_harness_vs_manual.py [--models timm:resnet18 torchvision:mobilenet_v3_small]
        [--batch-sizes 1,8] [--threads 1] [--rounds 3] [--min-time 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def manual_median_ms(module, batch, n_calls: int, device: str) -> float:
    """The bare loop: one input, 3 warm-up calls, then n_calls each timed with perf_counter (synced on cuda)."""
    import torch

    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(3):
            module(*batch)
        sync()
        for _ in range(n_calls):
            t0 = time.perf_counter()
            module(*batch)
            sync()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["timm:resnet18", "torchvision:mobilenet_v3_small"])
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()

    import torch

    from advisor.bench import BenchConfig, benchmark_model, hardware_fingerprint
    from advisor.bench.runner import _full_module, _place, default_loader

    torch.set_num_threads(args.threads)
    hw = hardware_fingerprint()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    load_before = os.getloadavg()[0]
    t_start = time.time()
    for model_id in args.models:
        loaded = default_loader(model_id, device=args.device, pretrained=False)
        module = _full_module(loaded)
        for bs in batch_sizes:
            # Same number of calls on both sides: at least 10 each (the harness may stop later on its CI rule).
            cfg = BenchConfig(
                device=args.device,
                batch_sizes=(bs,),
                threads=args.threads,
                min_time=args.min_time,
                min_repeats=10,
                max_time=max(30.0, 4 * args.min_time),
                count_flops=False,
            )
            h_meds, m_meds, ns = [], [], []
            for rnd in range(args.rounds):
                # Alternate which goes first, so a load change during a round does not always hit the same side.
                for side in ("harness", "manual") if rnd % 2 == 0 else ("manual", "harness"):
                    if side == "harness":
                        res = benchmark_model(model_id, cfg, store=False, loader=lambda *a, **k: loaded)  # noqa: B023
                        lat = res.records[0].latency
                        h_meds.append(lat["p50_ms"])
                        ns.append(lat["n"])
                    else:
                        batch = _place(loaded.example_batch(bs), args.device, None, False)
                        n_manual = max(
                            10,
                            ns[-1] if ns else 10,
                            int(args.min_time / max(1e-3, (h_meds or [1])[-1] / 1000)),
                        )
                        m_meds.append(manual_median_ms(module, batch, n_manual, args.device))
            h, m = statistics.median(h_meds), statistics.median(m_meds)
            rows.append(
                {
                    "model_id": model_id,
                    "batch_size": bs,
                    "harness_p50_ms_rounds": h_meds,
                    "manual_p50_ms_rounds": m_meds,
                    "harness_n_calls": ns,
                    "harness_p50_ms": h,
                    "manual_p50_ms": m,
                    "ratio": h / m,
                    "within_5pct": abs(h / m - 1) <= 0.05,
                }
            )
            print(
                f"{model_id:34s} bs={bs:<3d} harness {h:8.2f} ms  manual {m:8.2f} ms  ratio {h / m:.3f}",
                flush=True,
            )
    load_after = os.getloadavg()[0]
    record = {
        "what": "advisor bench harness median latency vs a bare hand-timed torch loop (same process, interleaved)",
        "goal": "harness/manual median ratio within 1 +- 0.05",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "device": args.device,
            "threads": args.threads,
            "rounds": args.rounds,
            "min_time_s": args.min_time,
            "precision": "fp32",
            "weights": "random init",
        },
        "loadavg_1m": {"before": load_before, "after": load_after},
        "hardware": hw,
        "results": rows,
        "all_within_5pct": all(r["within_5pct"] for r in rows),
        "seconds": time.time() - t_start,
    }
    cpu = re.sub(r"[^a-z0-9]+", "-", str(hw["cpu_model"]).lower()).strip("-")[:32]
    stem = f"bench_harness_vs_manual-{cpu}-{args.threads}t-torch{hw['versions']['torch'].split('+')[0]}"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Bench harness vs a bare torch loop",
        "",
        f"{record['date_utc']}; {hw['cpu_model']} ({hw['cpu_usable_cpus']} usable CPUs), torch "
        f"{hw['versions']['torch']}, timm {hw['versions']['timm']}, torchvision {hw['versions']['torchvision']}; "
        f"device {args.device}, {args.threads} thread(s), fp32, random weights, {args.rounds} interleaved rounds, "
        f"harness min-time {args.min_time} s. 1-min load average {load_before:.1f} before, {load_after:.1f} after "
        "(the machine is shared).",
        "",
        "| model | batch | harness p50 ms | manual p50 ms | ratio | within ±5 % |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model_id']} | {r['batch_size']} | {r['harness_p50_ms']:.2f} | "
            f"{r['manual_p50_ms']:.2f} | {r['ratio']:.3f} | {'yes' if r['within_5pct'] else 'no'} |"
        )
    lines += [
        "",
        "Medians over rounds of each round's median. The harness cycles a pool of distinct inputs and "
        "synchronises before each clock read; the manual loop reuses one input tensor.",
        "",
        f"Rerun: `python benchmarks/bench_harness_vs_manual.py --threads {args.threads} --rounds {args.rounds}`",
    ]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.json/.md; all within 5%: {record['all_within_5pct']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
