"""GPU check, ready to run in one call: ResNet-50 bf16 inference throughput measured by the advisor harness vs the
approach of timm's benchmark.py (cudnn.benchmark on, 10 warm-up steps, 40 steps launched back to back, one sync at
the end, samples/s = samples / elapsed), on the same machine, interleaved. Goal: harness >= 0.95x.
Also counts GMACs and sets timm's published GPU rows for resnet50 beside the measurement.

Usage (one call, ~1-2 min on a recent GPU; random weights, no network):
    python benchmarks/gpu_bench_resnet50.py [--out-dir $OUT] [--batch-size 256] [--precision bf16]
        [--channels-last] [--rounds 2]
Dry run on CPU (checks the script, not a GPU figure):
    python benchmarks/gpu_bench_resnet50.py --device cpu --model timm:resnet18 --batch-size 2 --precision fp32 \
        --min-time 0.5 --out-dir /tmp
Writes <out-dir>/gpu_bench_resnet50-<gpu>-torch<version>.{json,md}.
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


def timm_style_throughput(
    model_id: str,
    device: str,
    batch_size: int,
    precision: str,
    channels_last: bool,
    warm: int = 10,
    iters: int = 40,
) -> dict:
    """Throughput the way timm's benchmark.py measures it (re-implemented here, not imported)."""
    import timm
    import torch

    arch = model_id.split(":", 1)[-1]
    model = timm.create_model(arch, pretrained=False).eval().to(device)
    autocast_dtype = None
    if precision in ("bf16", "fp16"):
        model = model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
    elif precision.startswith("amp_"):
        autocast_dtype = torch.bfloat16 if precision == "amp_bf16" else torch.float16
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = next(model.parameters()).dtype
    x = torch.randn(batch_size, 3, 224, 224, device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    is_cuda = device.startswith("cuda")

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize(device)

    def step() -> None:
        if autocast_dtype is not None:
            with torch.autocast(device_type=device.split(":")[0], dtype=autocast_dtype):
                model(x)
        else:
            model(x)

    with torch.no_grad():
        for _ in range(warm):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        elapsed = time.perf_counter() - t0
    return {
        "samples_per_sec": batch_size * iters / elapsed,
        "step_time_ms": 1000 * elapsed / iters,
        "warmup_steps": warm,
        "bench_steps": iters,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="timm:resnet50")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=5.0)
    ap.add_argument("--out-dir", default=os.environ.get("OUT") or str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()

    import torch

    from advisor.bench import BenchConfig, benchmark_model, hardware_fingerprint
    from advisor.bench.published import published_throughput

    torch.backends.cudnn.benchmark = True  # as timm's benchmark.py does; the harness records its own setting
    hw = hardware_fingerprint()
    cfg = BenchConfig(
        device=args.device,
        batch_sizes=(args.batch_size,),
        precision=(args.precision,),
        channels_last=args.channels_last,
        min_time=args.min_time,
        max_time=4 * args.min_time,
        count_flops=True,
    )
    timm_runs, harness_runs, results = [], [], []
    t_start = time.time()
    for rnd in range(args.rounds):
        order = ("timm", "harness") if rnd % 2 == 0 else ("harness", "timm")
        for side in order:
            if side == "timm":
                r = timm_style_throughput(
                    args.model, args.device, args.batch_size, args.precision, args.channels_last
                )
                timm_runs.append(r["samples_per_sec"])
                print(f"round {rnd}: timm-style {r['samples_per_sec']:.1f} items/s", flush=True)
            else:
                res = benchmark_model(args.model, cfg, store=False)
                results.append(res.to_dict())
                rec = res.records[0]
                harness_runs.append(rec.throughput_items_per_s or 0.0)
                print(
                    f"round {rnd}: harness {rec.throughput_items_per_s:.1f} items/s (batch {rec.batch_size}, "
                    f"p50 {rec.latency['p50_ms']:.2f} ms, n {rec.latency['n']})",
                    flush=True,
                )
    h, t = statistics.median(harness_runs), statistics.median(timm_runs)
    last = results[-1]
    pub = [row for row in published_throughput(args.model, args.device, 224)]
    record = {
        "what": "ResNet-50 inference throughput: advisor harness vs timm benchmark.py approach, same machine",
        "goal": "harness / timm-style >= 0.95",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "model": args.model,
            "device": args.device,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "channels_last": args.channels_last,
            "rounds": args.rounds,
            "harness_min_time_s": args.min_time,
            "weights": "random init",
            "cudnn_benchmark": True,
        },
        "harness_items_per_s_rounds": harness_runs,
        "timm_style_items_per_s_rounds": timm_runs,
        "harness_items_per_s": h,
        "timm_style_items_per_s": t,
        "ratio": h / t if t else None,
        "meets_goal": bool(t and h / t >= 0.95),
        "gmacs": last.get("gmacs"),
        "gmacs_published": last.get("gmacs_published"),
        "memory": last["records"][0].get("memory"),
        "cold_start": last.get("cold_start"),
        "published_rows_same_model_gpu": pub,
        "hardware": hw,
        "seconds": time.time() - t_start,
        "harness_result": last,
    }
    gpu = hw["gpus"][0]["name"] if hw.get("gpus") else str(hw.get("cpu_model"))
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")[:32]
    stem = f"gpu_bench_resnet50-{slug}-torch{hw['versions']['torch'].split('+')[0]}"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    lines = [
        "# ResNet-50 throughput: advisor harness vs timm benchmark.py approach",
        "",
        f"{record['date_utc']}; {gpu}; driver {hw.get('driver_version')}; CUDA {hw.get('cuda_version')}; torch "
        f"{hw['versions']['torch']}; timm {hw['versions']['timm']}. {args.model}, batch {args.batch_size}, "
        f"{args.precision}, channels_last={args.channels_last}, random weights, {args.rounds} interleaved rounds.",
        "",
        "| method | items/s (median of rounds) | rounds |",
        "|---|---:|---|",
        f"| advisor harness (sync per call, median latency) | {h:.1f} | {', '.join(f'{v:.1f}' for v in harness_runs)} |",
        f"| timm benchmark.py approach (40 steps, one sync) | {t:.1f} | {', '.join(f'{v:.1f}' for v in timm_runs)} |",
        "",
        f"Ratio harness / timm-style: **{h / t:.3f}** (goal >= 0.95: {'met' if record['meets_goal'] else 'not met'}).",
        "",
        "Published (timm benchmark CSVs, other machines) for the same model:",
        "",
        "| file | precision | batch | img | items/s |",
        "|---|---|---:|---:|---:|",
    ]
    for row in pub:
        lines.append(
            f"| {row['file']} | {row['precision']} | {row['batch_size']} | {row['img_size']} | "
            f"{row['samples_per_sec']} |"
        )
    lines += [
        "",
        f"Rerun: `python benchmarks/gpu_bench_resnet50.py --batch-size {args.batch_size} "
        f"--precision {args.precision}{' --channels-last' if args.channels_last else ''}`",
    ]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"ratio {h / t:.3f}; wrote {out / stem}.json/.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
