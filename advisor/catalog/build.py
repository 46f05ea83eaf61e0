"""`advisor catalog build --sources DIR`: regenerate catalog/catalog.jsonl (and catalog/published_bench.jsonl) from
the upstream source tables in DIR and the installed libraries.

The project keeps no copy of the upstream tables: DIR is a folder the user points at (e.g. ../shared/data, or a
checkout of the upstream repositories), searched recursively by file name (see `REQUIRED_SOURCES`):
- timm's `pretrained_cfgs` table (one row per set of weights) and its published results/benchmark CSVs, with the
  `SOURCE.md` (or `timm-results.SOURCE.md`) beside them that names the repository commit;
- torchvision's weights metadata (one row per `*_Weights` enum member), with `torchvision-weights.SOURCE.md`;
- catalog/curated.json (kept in the project): models those tables do not cover (Hugging Face, packaged weights).

Parameter counts of timm, torchvision and Hugging Face entries are counted from the architecture instantiated on
the meta device (no weights, no download), so they are exact for the installed library versions. GMACs come from the
published tables (timm's benchmark CSVs, torchvision's `_ops`), labelled with their source.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import normalize_license
from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.sources_merge import merge_published_sources

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
    return tuple(parts) if len(parts) == 3 else None  # type: ignore[return-value]


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


def timm_entries(
    sources: Path | str | dict[str, Path] | None,
    only: Iterable[str] | None = None,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CatalogEntry]:
    """One entry per row of timm's pretrained-cfg table (`only`: restrict to these timm model names)."""
    import timm

    sources = _as_tables(sources)
    timm_repo = _timm_repo(sources)
    rows = _read_csv(TIMM_CFGS, sources)
    if only is not None:
        wanted = set(only)
        rows = [r for r in rows if r["model"] in wanted]
    results: dict[str, dict[str, dict[str, str]]] = {}
    for fname, dataset in TIMM_RESULTS.items():
        for r in _read_csv(fname, sources):
            results.setdefault(r["model"], {})[dataset] = r | {"_file": fname}
    gmacs: dict[tuple[str, int], tuple[float, str]] = {}
    for fname in reversed(TIMM_BENCH_GMACS):  # later (more recent) files overwrite older ones
        for r in _read_csv(fname, sources):
            if r.get("infer_gmacs"):
                gmacs[(r["model"], int(r["infer_img_size"]))] = (float(r["infer_gmacs"]), fname)
    available = set(timm.list_models())

    out = []
    for i, r in enumerate(rows):
        if progress:
            progress(i, len(rows))
        arch, name = r["architecture"], r["model"]
        num_classes = int(r["num_classes"] or 0)
        input_size = _size3(r["input_size"])
        n_params = feat = None
        probeable, note = (
            True,
            "timm architecture; weights from the Hugging Face hub (" + (r["hf_hub_id"] or "timm") + ")",
        )
        if arch not in available:
            probeable, note = False, f"architecture {arch!r} is not in the installed timm {timm.__version__}"
        elif count_params:
            n_params, feat, err = _count_meta_params(
                lambda arch=arch, nc=num_classes: timm.create_model(arch, pretrained=False, num_classes=nc)
            )
            if err:
                note = f"{note}; parameter count unavailable ({err})"
        metrics = []
        for dataset, res in results.get(name, {}).items():
            for metric in ("top1", "top5"):
                if res.get(metric):
                    metrics.append(
                        Metric(
                            dataset=dataset,
                            name=metric,
                            value=float(res[metric]),
                            source=timm_repo + res["_file"],
                            resolution=int(res["img_size"]),
                        )
                    )
        g = gmacs.get((arch, input_size[1])) if input_size else None
        spdx, lclass = normalize_license(r["license"] or None)
        task = (
            "image-classification"
            if num_classes in (1000, 1001, 11821, 11221, 19168, 21841, 21842, 21843) and "clip" not in name
            else "image-feature-extraction"
        )
        preprocess = {
            "mean": _floats(r["mean"]),
            "std": _floats(r["std"]),
            "interpolation": r["interpolation"] or None,
            "crop_pct": float(r["crop_pct"]) if r["crop_pct"] else None,
            "crop_mode": r["crop_mode"] or None,
        }
        tag_tokens = [t for t in r["tag"].split("_") if t]
        out.append(
            CatalogEntry(
                id=f"timm:{name}",
                source="timm",
                source_id=name,
                family=family_of(arch),
                architecture=arch,
                modality="image",
                task=task,
                n_params=n_params,
                n_params_source=f"counted: timm {timm.__version__} create_model on meta device"
                if n_params
                else None,
                gmacs=g[0] if g else None,
                gmacs_source=f"{timm_repo}{g[1]} (infer_gmacs at {input_size[1]}px)" if g else None,
                input_size=input_size,
                feature_dim=feat,
                num_classes=num_classes,
                pretrain_data=pretrain_chain(r["tag"]),
                license=spdx,
                license_raw=r["license"] or None,
                license_class=lclass,
                metrics=tuple(metrics),
                paper=(r["paper_name"] or r["paper_ids"] or None),
                year=year_from_arxiv(r["paper_ids"]),
                preprocess=preprocess,
                probeable=probeable,
                probe_note=note,
                tags=tuple(
                    dict.fromkeys([*tag_tokens, *(["default"] if r["is_default_tag"] == "True" else [])])
                ),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------- torchvision

_TV_TASKS = {
    "classification": ("image", "image-classification"),
    "quantization": ("image", "image-classification"),
    "segmentation": ("image", "semantic-segmentation"),
    "video": ("video", "video-classification"),
    "optical_flow": ("video", "optical-flow"),
}
_TV_LICENSE = "BSD-3-Clause (torchvision; the weights' meta names no license of their own)"


def _tv_pretrain(weights: str, task: str) -> str | None:
    w = weights.upper()
    if "SWAG" in w:
        return "instagram-3.6b -> imagenet-1k" if "E2E" in w or "LINEAR" in w else "instagram-3.6b"
    if w.startswith("IMAGENET1K"):
        return "imagenet-1k"
    if w.startswith("COCO_WITH_VOC_LABELS"):
        return "coco (voc labels)"
    if w.startswith("COCO"):
        return "coco"
    if w.startswith("KINETICS400"):
        return "kinetics-400"
    if "SINTEL" in w or "KITTI" in w or "THINGS" in w or "CHAIRS" in w:
        return (
            "flying-chairs -> flying-things"
            + (" -> sintel" if "SINTEL" in w else "")
            + (" -> kitti" if "KITTI" in w else "")
        )
    return None


def torchvision_entries(
    sources: Path | str | dict[str, Path] | None,
    only: Iterable[str] | None = None,
    count_params: bool = True,
) -> list[CatalogEntry]:
    """One entry per torchvision weights enum member (`only`: restrict to these `builder.WEIGHTS` names)."""
    import torchvision

    sources = _as_tables(sources)
    rows = _read_csv(TV_WEIGHTS, sources)
    if only is not None:
        wanted = set(only)
        rows = [r for r in rows if f"{r['builder']}.{r['weights']}" in wanted]
    src = f"torchvision {torchvision.__version__.split('+')[0]} weights meta ({TV_WEIGHTS})"
    out = []
    for r in rows:
        builder, weights, task_kind = r["builder"], r["weights"], r["task"]
        name = f"{builder}.{weights}"
        if task_kind == "detection":
            modality, task = (
                "image",
                (
                    "instance-segmentation"
                    if r["COCO-val2017:mask_map"]
                    else "keypoint-detection"
                    if r["COCO-val2017:kp_map"]
                    else "object-detection"
                ),
            )
        else:
            modality, task = _TV_TASKS[task_kind]
        metrics = []
        for col, value in r.items():
            if ":" in col and value and not col.startswith("tf_"):
                dataset, metric = col.split(":", 1)
                dataset = {"ImageNet-1K": "imagenet-1k"}.get(dataset, dataset.lower())
                metric = {"acc@1": "top1", "acc@5": "top5"}.get(metric, metric)
                metrics.append(Metric(dataset=dataset, name=metric, value=float(value), source=src))
        crop = int(r["tf_crop_size"].split("x")[0]) if r["tf_crop_size"] else None
        input_size = (
            (3, crop, crop) if crop and modality == "image" and task == "image-classification" else None
        )
        quantized = task_kind == "quantization"
        probeable = task_kind == "classification"
        note = (
            "torchvision classification weights; features are the classifier's input"
            if probeable
            else "quantized int8 model: CPU inference only, not used as a feature extractor"
            if quantized
            else f"{task} model, not a classification backbone (use its backbone's classification weights)"
        )
        lic_raw = r["license"] or None
        spdx, lclass = normalize_license(lic_raw) if lic_raw else ("BSD-3-Clause", "permissive")
        n_params = int(r["num_params"]) if r["num_params"] else None
        feat = None
        if count_params and probeable:
            feat = _tv_feature_dim(builder)
        preprocess = (
            {
                "mean": _floats(r["tf_mean"]),
                "std": _floats(r["tf_std"]),
                "interpolation": r["tf_interpolation"] or None,
                "resize_size": int(r["tf_resize_size"].split("x")[0]) if r["tf_resize_size"] else None,
                "crop_size": crop,
            }
            if r["tf_mean"]
            else None
        )
        out.append(
            CatalogEntry(
                id=f"torchvision:{name}",
                source="torchvision",
                source_id=f"{r['weights_enum']}.{weights}",
                family=family_of(builder),
                architecture=builder,
                modality=modality,
                task=task,
                n_params=n_params,
                n_params_source=src if n_params else None,
                gmacs=float(r["gflops"]) if r["gflops"] else None,
                gmacs_source=f"{src}: `_ops` (counts multiply-adds)" if r["gflops"] else None,
                input_size=input_size,
                feature_dim=feat,
                num_classes=int(r["num_categories"]) if r["num_categories"] else None,
                pretrain_data=_tv_pretrain(weights, task_kind),
                license=spdx,
                license_raw=lic_raw or _TV_LICENSE,
                license_class=lclass,
                metrics=tuple(metrics),
                file_mb=float(r["file_size_mb"]) if r["file_size_mb"] else None,
                file_mb_source=src if r["file_size_mb"] else None,
                preprocess=preprocess,
                probeable=probeable,
                probe_note=note,
                tags=tuple(
                    t
                    for t in (
                        "default" if r["is_default"] == "True" else "",
                        "quantized" if quantized else "",
                        r["quant_backend"] or "",
                    )
                    if t
                ),
            )
        )
    return out


def _tv_feature_dim(builder: str) -> int | None:
    """Width of the last Linear layer's input (the pooled features a classifier sees)."""
    import torch
    from torchvision import models as tvm

    m = _build_module(lambda: tvm.get_model(builder, weights=None))
    last = None
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            last = mod
    return int(last.in_features) if last is not None else None


# ------------------------------------------------------------------------------------------------------- curated


def _hf_count(spec: dict[str, Any]) -> tuple[int | None, str | None]:
    """Count parameters of a transformers class built from a config dict on the meta device."""
    import transformers

    cls = getattr(transformers, spec["class"])
    cfg_cls = getattr(transformers, spec["config_class"])
    config = cfg_cls(**spec.get("config", {}))
    n, _, err = _count_meta_params(lambda: cls(config))
    return n, (
        f"counted: transformers {transformers.__version__} {spec['class']} on meta device, "
        f"config from catalog/curated.json"
    ) if n else err


def curated_entries(path: Path = CURATED_FILE, count_params: bool = True) -> list[CatalogEntry]:
    """Entries from catalog/curated.json; `hf_arch` specs get their parameter count from the architecture."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for raw in data["entries"]:
        d = dict(raw)
        arch = d.pop("hf_arch", None)
        tarch = d.pop("timm_arch", None)
        if arch and count_params and d.get("n_params") is None:
            n, src = _hf_count(arch)
            if n:
                d["n_params"], d["n_params_source"] = n, src
        if tarch and count_params and d.get("n_params") is None:
            import timm

            n, _, _ = _count_meta_params(
                lambda t=tarch: timm.create_model(t["name"], pretrained=False, num_classes=t["num_classes"])
            )
            if n:
                d["n_params"] = n
                d["n_params_source"] = (
                    f"counted: timm {timm.__version__} {tarch['name']} on meta device "
                    "(the architecture the packaged weights load into)"
                )
        spdx, lclass = normalize_license(d.get("license_raw"))
        d.setdefault("license", spdx)
        d.setdefault("license_class", lclass)
        d["metrics"] = [dict(m) for m in d.get("metrics", [])]
        out.append(CatalogEntry.from_dict(d))
    return out


# --------------------------------------------------------------------------------------------------------- build


def build_catalog(
    sources: Path | str | dict[str, Path] | None,
    curated: Path = CURATED_FILE,
    *,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CatalogEntry]:
    """All entries: timm, then torchvision, then curated; ids are unique (checked by `Catalog`)."""
    sources = _as_tables(sources)
    entries = timm_entries(sources, count_params=count_params, progress=progress)
    entries += torchvision_entries(sources, count_params=count_params)
    entries += curated_entries(curated, count_params=count_params)
    return merge_published_sources(entries, sources)  # MTEB, Open ASR Leaderboard, OpenCLIP when present


def write_catalog(entries: list[CatalogEntry], path: Path) -> Path:
    """Write entries as JSONL atomically, one entry per line, keys in schema order."""
    from advisor.catalog.store import Catalog
    from advisor.io import atomic_write_text

    Catalog(entries)  # refuses duplicates
    lines = [json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")) for e in entries]
    return atomic_write_text(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------- published benchmarks

_BENCH_PROTOCOL = (
    "timm benchmark.py inference: mean synced step time over timed batches at the batch size in the row, "
    "on the machine, precision, memory layout and torch version the file name gives"
)


def _num(s: str | None) -> float | None:
    try:
        return float(str(s).replace(",", "")) if s not in (None, "") else None
    except ValueError:
        return None


def published_bench_records(sources: Path | str | dict[str, Path] | None) -> list[dict[str, Any]]:
    """Compact records of timm's published inference benchmarks for `advisor bench` (`TIMM_BENCH_PUBLISHED`).

    One `kind: "table"` record per file (repository, commit, file, protocol, machine and precision from the
    file name), then one `kind: "row"` record per model row with only what bench shows (img_size, batch_size,
    samples_per_sec, step_time_ms, param_count_m, gmacs), naming its table.
    """
    from advisor.bench.published import describe_file

    tables = _as_tables(sources)
    out: list[dict[str, Any]] = []
    for name in sorted(TIMM_BENCH_PUBLISHED):
        meta = describe_file(name)
        out.append(
            {
                "kind": "table",
                "table": name,
                "repository": TIMM_REPO_URL,
                "commit": source_commit(tables[name]),
                "file": f"results/{name}",
                "license": "Apache-2.0",
                "protocol": _BENCH_PROTOCOL,
                **{k: v for k, v in meta.items() if k != "file"},
            }
        )
        for r in _read_csv(name, tables):
            size, bs = _num(r.get("infer_img_size")), _num(r.get("infer_batch_size"))
            out.append(
                {
                    "kind": "row",
                    "table": name,
                    "model": r["model"],
                    "img_size": int(size) if size else None,
                    "batch_size": int(bs) if bs else None,
                    "samples_per_sec": _num(r.get("infer_samples_per_sec")),
                    "step_time_ms": _num(r.get("infer_step_time")),
                    "param_count_m": _num(r.get("param_count")),
                    "gmacs": _num(r.get("infer_gmacs")),
                }
            )
    return out


def write_published_bench(records: list[dict[str, Any]], path: Path) -> Path:
    """Write the published-benchmark records as JSONL atomically."""
    from advisor.io import atomic_write_text

    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    return atomic_write_text(path, "\n".join(lines) + "\n")
