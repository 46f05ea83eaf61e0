"""Candidate selection: which models the advisor considers for a dataset, under the user's constraints.

Static constraints (modality, probeable, license, max params, offline availability) are applied here from the
catalog. Constraints that need a measurement (latency, memory) are applied by the orchestration after
`advisor.bench` has measured them (`apply_measured_constraints`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from advisor.catalog.schema import CatalogEntry
from advisor.catalog.store import Catalog, Filters
from advisor.errors import CatalogEntryNotFound, UsageError
from advisor.models.ids import ModelId, model_source

LICENSE_CHOICES = ("any", "permissive", "commercial")

# Packaged (pip-installable) models that need no network: per modality, in the order we prefer them.
PACKAGED_DEFAULTS: dict[str, tuple[str, ...]] = {
    "image": ("pkg:efficientnet_lite0", "pkg:efficientnet_lite1", "pkg:efficientnet_lite2"),
    "text": ("pkg:all-MiniLM-L6-v2", "pkg:paraphrase-MiniLM-L3-v2", "pkg:wordllama-l2-supercat-256"),
    "audio": ("pkg:resemblyzer-ge2e",),
}

# Size buckets (parameter counts) used to keep the default set diverse.
SIZE_BUCKETS: tuple[float, ...] = (10e6, 30e6, 100e6, 350e6, math.inf)


@dataclass(frozen=True)
class Constraints:
    """The user's constraints on candidates (None = no constraint). Units are in the names."""

    device: str = "auto"
    max_latency_ms: float | None = None
    latency_batch_size: int = 1
    max_params: float | None = None  # count (the CLI accepts 25M / 1.5e7)
    max_memory_mb: float | None = None
    license: str = "any"
    models: tuple[str, ...] = ()
    offline: bool = False
    max_candidates: int | None = None

    def __post_init__(self) -> None:
        if self.license not in LICENSE_CHOICES:
            raise UsageError(
                f"unknown --license {self.license!r}", hint=f"use one of {', '.join(LICENSE_CHOICES)}"
            )
        if self.latency_batch_size < 1:
            raise UsageError("--latency-batch-size must be at least 1")
        for name in ("max_latency_ms", "max_params", "max_memory_mb"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {v}")


@dataclass
class Candidate:
    """A model the advisor will consider: its id, catalog entry (None for local files) and why it is here."""

    model_id: str
    entry: CatalogEntry | None = None
    origin: str = "default"  # "default" | "explicit" | "packaged"
    available: bool | None = None  # weights available without network (None = not checked)
    notes: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int | None:
        return self.entry.n_params if self.entry else None


@dataclass
class Exclusion:
    """A model that was considered and left out, and why (shown in the report)."""

    model_id: str
    reason: str


def is_local_path(model_id: str) -> bool:
    """True for ``local:...`` ids and bare paths of model files (`ModelId`'s rule, the registry's)."""
    return model_source(model_id) == "local"


def _dist_installed(source_id: str) -> bool:
    name = source_id.split("==", 1)[0].split()[0]
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return importlib.util.find_spec(name.replace("-", "_")) is not None


def _hf_cached_repo_dirs() -> set[str]:
    """Names of the repo folders in the local Hugging Face cache (``models--org--name``), listed once per call."""
    try:
        from huggingface_hub import constants

        root = Path(constants.HF_HUB_CACHE)
        return {p.name for p in root.iterdir() if p.name.startswith("models--")} if root.is_dir() else set()
    except Exception:
        return set()


def _torch_hub_files() -> set[str]:
    """File names in torch.hub's checkpoint folder, located as torch does it but without importing torch."""
    import os

    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    d = Path(home).expanduser() / "hub" / "checkpoints"
    try:
        return {p.name for p in d.iterdir()} if d.is_dir() else set()
    except OSError:
        return set()


class LocalWeights:
    """Answers "are these weights available with no network?" for many entries, listing each cache once."""

    def __init__(self) -> None:
        self._hf: set[str] | None = None
        self._hub: set[str] | None = None

    def __call__(self, entry: CatalogEntry) -> bool:
        try:
            if entry.source == "pkg":
                return _dist_installed(entry.source_id)
            if entry.source in ("timm", "hf"):
                if self._hf is None:
                    self._hf = _hf_cached_repo_dirs()
                repo = (entry.source_id if entry.source == "hf" else f"timm/{entry.source_id}").split("@", 1)[
                    0
                ]
                if "models--" + repo.replace("/", "--") not in self._hf:
                    return False
                from advisor.models.hub import hf_cached_file

                names = (
                    ("config.json",) if entry.source == "hf" else ("model.safetensors", "pytorch_model.bin")
                )
                return any(hf_cached_file(repo, n) is not None for n in names)
            if entry.source == "torchvision":
                if self._hub is None:
                    self._hub = _torch_hub_files()
                if not self._hub:
                    return False
                import torchvision

                arch, _, tag = entry.source_id.partition(".")
                w = torchvision.models.get_weight(entry.source_id if tag else f"{arch}.DEFAULT")
                return Path(w.url.split("?")[0]).name in self._hub
        except Exception:  # an unknown layout is "not known to be available"
            return False
        return False


def weights_available_locally(entry: CatalogEntry) -> bool:
    """Whether the weights of `entry` can be loaded with no network (installed package or a cached download).

    Never touches the network: looks at installed distributions and the Hugging Face / torch.hub caches.
    """
    return LocalWeights()(entry)


def _known_architecture(model_id: str) -> bool:
    """Whether a source can build `model_id` although the catalog does not list it (timm names are checked)."""
    mid = ModelId.parse(model_id)
    if mid.source == "timm":
        try:
            import timm
        except ImportError:
            return False
        return bool(timm.is_model(mid.name))
    return True  # torchvision/hf ids: the loader gives the precise error


def license_ok(entry: CatalogEntry | None, license: str) -> bool:
    """Whether an entry passes ``--license`` (local files without an entry always pass: the user owns them)."""
    if entry is None or license == "any":
        return True
    return Filters(license=license).accepts(entry)


def _bucket(n: int | None) -> int:
    if n is None:
        return len(SIZE_BUCKETS)
    return next(i for i, b in enumerate(SIZE_BUCKETS) if n <= b)


def published_prior(e: CatalogEntry) -> float | None:
    """The published figure candidates are ranked by: ImageNet-1k top-1 for images, else (text and audio
    encoders) the MTEB classification mean; both percent, None when the catalog has neither."""
    return e.imagenet_top1 if e.imagenet_top1 is not None else e.mteb_classification


def diverse_default(entries: Sequence[CatalogEntry], k: int) -> list[CatalogEntry]:
    """Pick up to `k` entries covering sizes, families and pretraining sources, best published accuracy first.

    Round-robin over size buckets; within a bucket prefer (a) a pretraining source not yet picked, (b) a family
    not yet picked, (c) higher published prior (`published_prior`), (d) fewer parameters.
    """
    by_bucket: dict[int, list[CatalogEntry]] = {}
    for e in entries:
        by_bucket.setdefault(_bucket(e.n_params), []).append(e)
    picked: list[CatalogEntry] = []
    seen_pre: set[str] = set()
    seen_fam: set[str] = set()
    while len(picked) < k and any(by_bucket.values()):
        for b in sorted(by_bucket):
            pool = by_bucket[b]
            if not pool or len(picked) >= k:
                continue
            pool.sort(
                key=lambda e: (
                    (e.pretrain_data or "?") in seen_pre,
                    e.family in seen_fam,
                    -(published_prior(e) or 0.0),
                    e.n_params or 0,
                )
            )
            e = pool.pop(0)
            picked.append(e)
            seen_pre.add(e.pretrain_data or "?")
            seen_fam.add(e.family)
    return picked


def select_candidates(
    modality: str,
    constraints: Constraints,
    catalog: Catalog | None = None,
    *,
    default_count: int = 6,
) -> tuple[list[Candidate], list[Exclusion]]:
    """Choose the candidates for a dataset of `modality` under `constraints` (static ones only).

    Explicit ``models`` are used as given (catalog ids, bare names, or local files), still checked against the
    license, size and offline constraints. Otherwise the default set is: packaged models of the modality that are
    installed, plus (when online) a diverse pick of probeable catalog entries; offline, only entries whose weights
    are already local.

    Args:
        modality: the dataset's modality.
        constraints: the user's constraints.
        catalog: the catalog (default: `advisor.catalog.store.load_catalog()`).
        default_count: size of the default set (before ``max_candidates``).

    Returns:
        (candidates in the order to consider them, exclusions with reasons).

    Raises:
        CatalogEntryNotFound: an explicit id that is neither in the catalog nor a local file.
    """
    if catalog is None:
        from advisor.catalog.store import load_catalog

        catalog = load_catalog()
    limit = constraints.max_candidates
    local = LocalWeights()
    out: list[Candidate] = []
    excluded: list[Exclusion] = []

    def static_reason(e: CatalogEntry) -> str | None:
        if e.modality != modality:
            return f"modality {e.modality}, data is {modality}"
        if not e.probeable:
            return f"not usable as a frozen feature extractor ({e.probe_note or e.task})"
        if not license_ok(e, constraints.license):
            return f"license {e.license or e.license_class} fails --license {constraints.license}"
        if constraints.max_params is not None and (e.n_params is None or e.n_params > constraints.max_params):
            size = "unknown size" if e.n_params is None else f"{e.n_params / 1e6:.1f}M params"
            return f"{size} > --max-params {constraints.max_params / 1e6:.1f}M"
        return None

    if constraints.models:
        for mid in constraints.models:
            if is_local_path(mid):
                out.append(Candidate(mid, None, "explicit", available=True))
                continue
            try:
                e = catalog.get(mid)
            except CatalogEntryNotFound:
                src = model_source(mid)
                if src in ("timm", "torchvision", "hf") and _known_architecture(mid):
                    # a valid id the catalog does not list (e.g. timm:test_vit): let the loader decide
                    out.append(Candidate(mid, None, "explicit", notes=["not in the catalog"]))
                    continue
                raise
            reason = static_reason(e)
            if reason:
                excluded.append(Exclusion(e.id, reason))
                continue
            avail = local(e)
            if constraints.offline and not avail:
                excluded.append(Exclusion(e.id, "weights not available locally and --offline"))
                continue
            out.append(Candidate(e.id, e, "explicit", available=avail))
        return (out[:limit] if limit else out), excluded

    entries = [e for e in catalog if e.modality == modality]
    for mid in PACKAGED_DEFAULTS.get(modality, ()):
        if mid not in catalog:
            continue
        e = catalog.get(mid)
        reason = static_reason(e)
        if reason:
            excluded.append(Exclusion(mid, reason))
        elif not local(e):
            excluded.append(Exclusion(mid, f"package {e.source_id.split('==')[0]} is not installed"))
        else:
            out.append(Candidate(mid, e, "packaged", available=True))
    pool = [e for e in entries if e.source != "pkg" and static_reason(e) is None]
    if constraints.offline:
        pool = [e for e in pool if local(e)]
    need = max(0, default_count - len(out)) if not constraints.offline else len(pool)
    for e in diverse_default(pool, need):
        out.append(Candidate(e.id, e, "default", available=None if not constraints.offline else True))
    if limit:
        for c in out[limit:]:
            excluded.append(Exclusion(c.model_id, f"over the candidate limit ({limit}) for this budget"))
        out = out[:limit]
    return out, excluded
