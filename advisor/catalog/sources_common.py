"""The upstream source tables `advisor catalog build` reads (names, where to find them, how to read them) and the
naming rules (architecture family, pretraining chain, year) the timm and torchvision sources share.

Parameter counts are taken from the architecture instantiated on the meta device (`_count_meta_params`): no weights,
no download, exact for the installed library versions.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parents[2] / "catalog"
CURATED_FILE = Path(__file__).resolve().parents[2] / "catalog" / "curated.json"

TIMM_CFGS = "timm-pretrained-cfgs.csv"
TIMM_RESULTS = {  # file -> dataset name used in Metric.dataset
    "results-imagenet.csv": "imagenet-1k",
    "results-imagenet-real.csv": "imagenet-real",
    "results-imagenetv2-matched-frequency.csv": "imagenet-v2",
    "results-sketch.csv": "imagenet-sketch",
    "results-imagenet-r.csv": "imagenet-r",
    "results-imagenet-a.csv": "imagenet-a",
}
# Benchmark tables whose infer_gmacs we take, most recent first (GMACs do not depend on the GPU).
TIMM_BENCH_GMACS = (
    "benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv",
    "benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv",
    "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv",
)
TV_WEIGHTS = "torchvision-weights.csv"
# Benchmark tables whose throughput rows `advisor bench` sets beside its measurements (CPU and GPU, fp32 and amp).
TIMM_BENCH_PUBLISHED = (
    "benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv",
    "benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv",
    "benchmark-infer-fp32-nchw-pt221-cpu-i9_10940x-dynamo.csv",
    "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv",
    "benchmark-infer-fp32-nchw-pt240-cpu-i9_10940x-dynamo.csv",
)
REQUIRED_SOURCES = tuple(
    dict.fromkeys((TIMM_CFGS, *TIMM_RESULTS, *TIMM_BENCH_GMACS, *TIMM_BENCH_PUBLISHED, TV_WEIGHTS))
)
TIMM_REPO_URL = "https://github.com/huggingface/pytorch-image-models"
TV_REPO_URL = "https://github.com/pytorch/vision"
PUBLISHED_BENCH_FILE = "published_bench.jsonl"
_COMMIT = re.compile(r"\*\*Commit:\*\*\s*`([0-9a-f]{7,40})`|git_version\s*=\s*([0-9a-f]{7,40})")


def locate_sources(sources: Path | str | None) -> dict[str, Path]:
    """The source tables under `sources`, by file name (searched recursively; the first path in sorted order wins).

    Accepts the layout of ../shared/data (timm-results/*.csv, torchvision-weights.csv) and a flat folder alike.

    Raises:
        UsageError: no folder given, not a folder, or a required table is missing.
    """
    from advisor.errors import UsageError

    need = "a folder holding " + ", ".join(
        (TIMM_CFGS, "results-imagenet*.csv", "benchmark-infer-*.csv", TV_WEIGHTS)
    )
    if sources is None:
        raise UsageError(
            "`advisor catalog build` needs --sources DIR",
            hint=f"DIR: {need} (e.g. ../shared/data), searched recursively",
        )
    root = Path(sources).expanduser()
    if not root.is_dir():
        raise UsageError(f"--sources {str(root)!r} is not a folder", hint=f"DIR: {need}")
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix in (".csv", ".jsonl", ".json") or p.name.endswith("SOURCE.md")):
            found.setdefault(p.name, p)
    missing = [n for n in REQUIRED_SOURCES if n not in found]
    if missing:
        raise UsageError(
            f"--sources {str(root)!r} lacks {len(missing)} source table(s): {', '.join(missing[:4])}"
            + (" ..." if len(missing) > 4 else ""),
            hint=f"DIR: {need}",
        )
    return found


def _source_file_for(table: Path) -> Path | None:
    """The provenance file of a table: `<stem>.SOURCE.md`, `SOURCE.md` or `timm-results.SOURCE.md` beside it."""
    for name in (table.stem + ".SOURCE.md", "SOURCE.md", "timm-results.SOURCE.md"):
        if (table.parent / name).is_file():
            return table.parent / name
    return None


def source_commit(table: Path) -> str | None:
    """The upstream commit the provenance file beside `table` names, or None."""
    src = _source_file_for(table)
    if src is None:
        return None
    m = _COMMIT.search(src.read_text(encoding="utf-8"))
    return (m.group(1) or m.group(2)) if m else None


def _timm_repo(tables: dict[str, Path]) -> str:
    """Provenance prefix of timm figures, e.g. `huggingface/pytorch-image-models@aa4b585 results/`."""
    commit = source_commit(tables[TIMM_CFGS])
    return f"huggingface/pytorch-image-models@{commit[:7] if commit else 'unknown-commit'} results/"


def _as_tables(sources: Path | str | dict[str, Path] | None) -> dict[str, Path]:
    return sources if isinstance(sources, dict) else locate_sources(sources)


# Pretraining datasets as they appear in timm tags -> the name we store.
_DATASET_TOKENS = {
    "in1k": "imagenet-1k",
    "in12k": "imagenet-12k",
    "in21k": "imagenet-21k",
    "in22k": "imagenet-22k",
    "laion2b": "laion-2b",
    "laiona": "laion-aesthetic",
    "laion400m": "laion-400m",
    "openai": "openai-wit-400m",
    "webli": "webli",
    "lvd142m": "lvd-142m",
    "lvd1689m": "lvd-1689m",
    "sat493m": "sat-493m",
    "datacomp1b": "datacomp-1b",
    "datacompxl": "datacomp-xl",
    "dfn2b": "dfn-2b",
    "dfn5b": "dfn-5b",
    "dfndr2b": "dfn-dr-2b",
    "merged2b": "merged-2b",
    "m38m": "merged-38m",
    "ig1b": "instagram-1b",
    "ig3b": "instagram-3.5b",
    "swsl": "instagram-1b",
    "wsl": "instagram-1b",
    "jft": "jft-300m",
    "jft300m": "jft-300m",
    "ns": "jft-300m",
    "yfcc15m": "yfcc-15m",
    "cc12m": "cc-12m",
    "metaclip": "metaclip",
    "mclip2": "metaclip-2",
    "inat21": "inaturalist-2021",
    "seer": "instagram-1b",
    "sa1b": "sa-1b",
    "inw21k": "imagenet-21k-winter",
}
_METACLIP_SIZE = re.compile(r"metaclip_(2pt5b|400m|fullcc)")

# Family names: ordered (pattern, family) rules on the architecture name; first match wins.
_FAMILY_RULES: tuple[tuple[str, str], ...] = (
    (r"^fasterrcnn", "faster-rcnn"),
    (r"^maskrcnn", "mask-rcnn"),
    (r"^keypointrcnn", "keypoint-rcnn"),
    (r"^ssd", "ssd"),
    (r"^deeplabv3", "deeplabv3"),
    (r"^(r3d|r2plus1d|mc3)_", "resnet3d"),
    (r"^swin3d", "swin3d"),
    (r"dinov2|dinov3", "dinov2"),
    (r"siglip", "siglip"),
    (r"_clip_|^clip|clip_", "clip"),
    (r"^eva", "eva"),
    (r"^(tf_)?efficientnetv2|^efficientnet_v2", "efficientnetv2"),
    (r"^(tf_|gc_)?efficientnet_lite|^efficientnet_lite", "efficientnet-lite"),
    (r"^(tf_|gc_)?efficientnet|^efficientvit", "efficientnet"),
    (r"^(tf_)?mobilenetv1|^mobilenet_v1", "mobilenet"),
    (r"^(tf_)?mobilenet", "mobilenet"),
    (r"^(legacy_|gluon_|ig_|ssl_|swsl_|tv_|wide_)?resnext", "resnext"),
    (r"^(legacy_|gluon_|tv_|wide_)?resnet(?!v2)|^resnet\d", "resnet"),
    (r"^resnetv2", "resnetv2"),
    (r"^(adv_|ens_adv_|gluon_|tf_)?inception", "inception"),
    (r"^densenet", "densenet"),
    (r"^vgg", "vgg"),
    (r"^(deit|deit3)", "deit"),
    (r"^beit", "beit"),
    (r"^swin", "swin"),
    (r"^convnext", "convnext"),
    (r"^vit|^flexivit|^samvit|^vitamin", "vit"),
    (r"^regnet", "regnet"),
    (r"^mixnet|^tf_mixnet", "mixnet"),
)


def family_of(architecture: str) -> str:
    """A coarse architecture family for grouping and search (e.g. `tf_efficientnet_b0` -> `efficientnet`)."""
    a = architecture.lower()
    for pattern, fam in _FAMILY_RULES:
        if re.search(pattern, a):
            return fam
    a = re.sub(r"^(tf|legacy|gluon|tv|ig|ssl|swsl|adv|ens|quantized)_", "", a)
    for pattern, fam in _FAMILY_RULES:  # again, without the prefix (quantized_resnet18 -> resnet)
        if re.search(pattern, a):
            return fam
    head = re.match(r"[a-z]+?(?=v?\d|_|$)", a)  # letters, without a trailing version: hgnetv2 -> hgnet
    return head.group(0) if head else a


def pretrain_chain(tag: str) -> str | None:
    """The pretraining data named by a timm weight tag, in training order (`fb_in22k_ft_in1k` -> 'imagenet-22k -> imagenet-1k')."""
    chain: list[str] = []
    m = _METACLIP_SIZE.search(tag)
    for tok in tag.lower().split("_"):
        name = _DATASET_TOKENS.get(tok)
        if name == "metaclip" and m:
            name = "metaclip-" + m.group(1).replace("pt", ".")
        if name and (not chain or chain[-1] != name):
            chain.append(name)
    return " -> ".join(chain) if chain else None


def year_from_arxiv(paper_ids: str | None) -> int | None:
    """Year of the first arXiv id in `paper_ids` (arXiv:YYMM.NNNNN)."""
    if not paper_ids:
        return None
    m = re.search(r"arXiv:(\d{2})(\d{2})\.", paper_ids)
    return 2000 + int(m.group(1)) if m else None


def _size3(s: str | None) -> tuple[int, int, int] | None:
    if not s:
        return None
    parts = [int(x) for x in s.split("x")]
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _floats(s: str | None) -> list[float] | None:
    return [float(x) for x in s.split("x")] if s else None


def _read_csv(name: str, tables: dict[str, Path]) -> list[dict[str, str]]:
    with open(tables[name], newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _build_module(build: Callable[[], Any]) -> Any:
    """Instantiate a module on the meta device (no memory, no init cost); on CPU when its builder needs real tensors."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return build()
        except (NotImplementedError, RuntimeError):  # e.g. builders that call .tolist() on tensors
            return build()


def _count_meta_params(build: Callable[[], Any]) -> tuple[int | None, int | None, str | None]:
    """Instantiate a module (see `_build_module`); return (n_params, num_features, error)."""
    try:
        module = _build_module(build)
    except Exception as e:  # architectures that cannot be built here are recorded, not guessed
        return None, None, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    n = sum(p.numel() for p in module.parameters())
    return int(n), getattr(module, "num_features", None), None


# ---------------------------------------------------------------------------------------------------------- timm
