"""OpenCLIP's published zero-shot figures, attached to the catalog entries holding the same weights."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from advisor.catalog.schema import Metric

OPENCLIP_RESULTS = "openclip_results.csv"
ZERO_SHOT = "zero-shot (text prompts), not a linear probe"
# (OpenCLIP architecture, pretrained tag) -> the catalog ids of the same weights (an explicit, reviewed table:
# OpenCLIP's names carry no Hugging Face id).
SAME_WEIGHTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ViT-B-32", "openai"): ("timm:vit_base_patch32_clip_224.openai", "hf:openai/clip-vit-base-patch32"),
    ("ViT-B-32-quickgelu", "openai"): ("timm:vit_base_patch32_clip_quickgelu_224.openai",),
    ("ViT-B-16", "openai"): ("timm:vit_base_patch16_clip_224.openai", "hf:openai/clip-vit-base-patch16"),
    ("ViT-L-14", "openai"): ("timm:vit_large_patch14_clip_224.openai", "hf:openai/clip-vit-large-patch14"),
    ("ViT-L-14-336", "openai"): ("timm:vit_large_patch14_clip_336.openai",),
    ("RN50", "openai"): ("timm:resnet50_clip.openai",),
    ("RN101", "openai"): ("timm:resnet101_clip.openai",),
    ("RN50x4", "openai"): ("timm:resnet50x4_clip.openai",),
    ("RN50x16", "openai"): ("timm:resnet50x16_clip.openai",),
    ("RN50x64", "openai"): ("timm:resnet50x64_clip.openai",),
    ("ViT-B-16-SigLIP", "webli"): (
        "timm:vit_base_patch16_siglip_224.webli",
        "hf:google/siglip-base-patch16-224",
    ),
    ("ViT-B-16-SigLIP-256", "webli"): ("timm:vit_base_patch16_siglip_256.webli",),
    ("ViT-B-16-SigLIP-384", "webli"): ("timm:vit_base_patch16_siglip_384.webli",),
    ("ViT-B-16-SigLIP-512", "webli"): ("timm:vit_base_patch16_siglip_512.webli",),
    ("ViT-L-16-SigLIP-256", "webli"): ("timm:vit_large_patch16_siglip_256.webli",),
    ("ViT-L-16-SigLIP-384", "webli"): ("timm:vit_large_patch16_siglip_384.webli",),
    ("ViT-SO400M-14-SigLIP", "webli"): ("timm:vit_so400m_patch14_siglip_224.webli",),
    ("ViT-SO400M-14-SigLIP-384", "webli"): (
        "timm:vit_so400m_patch14_siglip_384.webli",
        "hf:google/siglip-so400m-patch14-384",
    ),
}
_SKIP = {"name", "pretrained", "params (M)", "FLOPs (B)"}


def _commit(path: Path) -> str:
    src = path.parent / "SOURCE.md"
    m = re.search(r"at commit `([0-9a-f]{7,40})`", src.read_text(encoding="utf-8")) if src.is_file() else None
    return m.group(1)[:7] if m else "unknown-commit"


def _dataset(col: str) -> str:
    if col.startswith("Average perf."):
        return "openclip-zero-shot-mean"
    return re.sub(r"[^a-z0-9]+", "-", col.lower()).strip("-")


def openclip_metrics(tables: dict[str, Path]) -> dict[str, list[Metric]]:
    """Zero-shot accuracies (percent) per catalog id, for the weights in `SAME_WEIGHTS`."""
    if OPENCLIP_RESULTS not in tables:
        return {}
    path = tables[OPENCLIP_RESULTS]
    src = f"mlfoundations/open_clip@{_commit(path)} docs/{OPENCLIP_RESULTS}"
    out: dict[str, list[Metric]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            ids = SAME_WEIGHTS.get((r["name"], r["pretrained"]))
            if not ids:
                continue
            ms = [
                Metric(_dataset(col), "zero_shot_acc", round(float(v) * 100, 2), src, protocol=ZERO_SHOT)
                for col, v in r.items()
                if col not in _SKIP and v not in ("", None)
            ]
            for i in ids:
                out[i] = ms
    return out
