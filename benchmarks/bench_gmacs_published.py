"""GMACs counted by advisor (fvcore + attention handle; torch FlopCounterMode on the meta device) vs the GMACs
published by timm (benchmark CSVs, ``infer_gmacs``) and torchvision (weights metadata ``_ops``/"gflops", which
counts multiply-adds). Goal: within 1 % for ResNet-50, ConvNeXt-T, EfficientNet-B0, ViT-B/16, Swin-T.
Writes benchmarks/results/bench_gmacs_published-torch<version>-timm<version>.{json,md}.

Usage:
    python benchmarks/bench_gmacs_published.py
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = [
    "timm:resnet50",
    "torchvision:resnet50",
    "timm:convnext_tiny",
    "torchvision:convnext_tiny",
    "timm:efficientnet_b0",
    "torchvision:efficientnet_b0",
    "timm:vit_base_patch16_224",
    "torchvision:vit_b_16",
    "timm:swin_tiny_patch4_window7_224",
    "torchvision:swin_t",
    "timm:resnet18",
    "torchvision:mobilenet_v3_small",
    "timm:test_vit",
]


def main() -> int:
    import torch

    from advisor.bench import count_gmacs, hardware_fingerprint
    from advisor.bench.flops import within
    from advisor.bench.published import published_gmacs
    from advisor.bench.runner import _full_module, default_loader

    torch.set_num_threads(1)
    hw = hardware_fingerprint()
    rows = []
    for model_id in sys.argv[1:] or MODELS:
        loaded = default_loader(model_id, device="cpu", pretrained=False)
        module = _full_module(loaded)
        batch = tuple(loaded.example_batch(1))
        size = int(batch[0].shape[-1])
        r = count_gmacs(module, batch)
        for p in published_gmacs(model_id, size):
            measured = r.gmacs if p["compare_with"] == "gmacs" else r.gmacs_torch
            rel = (measured - p["gmacs"]) / p["gmacs"]
            dec = 2 if p["column"] == "infer_gmacs" else 3
            rows.append(
                {
                    "model_id": model_id,
                    "img_size": size,
                    "gmacs_fvcore": r.gmacs,
                    "gmacs_torch": r.gmacs_torch,
                    "torch_method": r.torch_method,
                    "published": p["gmacs"],
                    "published_source": p["source"],
                    "published_column": p["column"],
                    "compared_with": p["compare_with"],
                    "rel_err": rel,
                    "within_1pct": abs(rel) <= 0.01,
                    "within_1pct_or_rounding": within(measured, p["gmacs"], 0.01, decimals=dec),
                    "significant_uncounted": r.significant_uncounted,
                    "count_seconds": r.seconds,
                }
            )
            print(
                f"{model_id:36s} fvcore {r.gmacs:8.4f} torch {r.gmacs_torch:8.4f} published {p['gmacs']:7.3f} "
                f"({p['compare_with']}) rel {100 * rel:+.2f}%",
                flush=True,
            )
    record = {
        "what": "GMACs per sample at the native input size: advisor count vs published",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hw,
        "results": rows,
    }
    v = hw["versions"]
    stem = f"bench_gmacs_published-torch{v['torch'].split('+')[0]}-timm{v['timm']}"
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# GMACs: advisor count vs published",
        "",
        f"{record['date_utc']}; torch {v['torch']}, torchvision {v['torchvision']}, timm {v['timm']}, fvcore "
        f"{v['fvcore']}. Batch 1 at the native input size, random weights. `gmacs` = fvcore + advisor's "
        "scaled-dot-product-attention handle (timm's convention); `gmacs_torch` = torch FlopCounterMode / 2 on "
        "the meta device (torchvision's convention). Each published figure is compared with the count of its "
        "own convention. timm's table rounds to 2 decimals.",
        "",
        "| model | px | counted (convention) | published | source | rel. error | within 1 % |",
        "|---|---:|---:|---:|---|---:|:---:|",
    ]
    for r in rows:
        measured = r["gmacs_fvcore"] if r["compared_with"] == "gmacs" else r["gmacs_torch"]
        ok = "yes" if r["within_1pct"] else ("rounding" if r["within_1pct_or_rounding"] else "no")
        lines.append(
            f"| {r['model_id']} | {r['img_size']} | {measured:.4f} ({r['compared_with']}) | "
            f"{r['published']} | {r['published_source']} | {100 * r['rel_err']:+.2f} % | {ok} |"
        )
    lines += ["", "Rerun: `python benchmarks/bench_gmacs_published.py`"]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.json/.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
