"""Target datasets of the ranking benchmark: materialised from /work/shared/assets into the benchmark cache and read
back through the product's own `advisor.data` readers, with the fixed ground-truth train/test splits (folds).

Each target has one or more folds; a fold is (ground-truth train samples, held-out test samples). The advisor's
subsamples are drawn from a fold's train samples with `advisor.data.stratified_sample` (seeded, nested).
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ASSETS = Path(os.environ.get("ADVISOR_ASSETS", Path(__file__).resolve().parents[3] / "shared" / "assets"))


@dataclass(frozen=True)
class TargetSpec:
    """How one target is built and evaluated.

    Attributes:
        name: target key.
        modality: image | text | audio.
        role: "dev" (used to choose the combination) or "confirm" (held out for confirming it).
        gt_train_per_class: cap per class of the ground-truth training split (None: all).
        gt_test_per_class: cap per class of the held-out test split (None: all).
        sub_sizes: per-class sizes of the advisor's subsamples (drawn from the fold's train split).
        seeds: number of subsample seeds (0..seeds-1) per size.
        max_classes: keep only this many classes (seeded choice; None: all). Used by the smoke run.
        pool_per_group: FSDD only: clips kept per (speaker, digit) before the folds are made (None: all).
        note: what the split is and where the data come from.
    """

    name: str
    modality: str
    role: str
    gt_train_per_class: int | None
    gt_test_per_class: int | None
    sub_sizes: tuple[int, ...]
    seeds: int
    max_classes: int | None = None
    pool_per_group: int | None = None
    note: str = ""


@dataclass
class Fold:
    """One ground-truth split: the probe is trained on `train` and measured on `test`."""

    name: str
    train: list = field(default_factory=list)
    test: list = field(default_factory=list)


@dataclass
class PreparedTarget:
    """A target read through advisor.data: the Dataset, its folds, and the samples that need features."""

    spec: TargetSpec
    dataset: object  # advisor.data.Dataset
    folds: list[Fold]
    classes: list[str]

    @property
    def pool(self) -> list:
        """Every sample used by any fold, in dataset order (features are extracted once for these)."""
        ids = {s.id for f in self.folds for s in (*f.train, *f.test)}
        return [s for s in self.dataset.samples if s.id in ids]


SIZES = (10, 30)

TARGETS: dict[str, TargetSpec] = {
    "fashion_mnist": TargetSpec(
        "fashion_mnist",
        "image",
        "dev",
        gt_train_per_class=120,
        gt_test_per_class=60,
        sub_sizes=SIZES,
        seeds=3,
        note="Fashion-MNIST subset (assets npz: 200/class train, 100/class test; 28x28 grey written as PNG), "
        "capped for CPU time",
    ),
    "banking77": TargetSpec(
        "banking77",
        "text",
        "dev",
        gt_train_per_class=45,
        gt_test_per_class=15,
        sub_sizes=SIZES,
        seeds=3,
        note="Banking77 train.csv/test.csv (77 intents), read by advisor.data's split-table reader, capped",
    ),
    "bccd_crops": TargetSpec(
        "bccd_crops",
        "image",
        "dev",
        gt_train_per_class=100,
        gt_test_per_class=50,
        sub_sizes=SIZES,
        seeds=3,
        note="BCCD blood-cell boxes cropped with 10 % context (RBC / WBC / Platelets); the dataset's image split "
        "(trainval -> train, test -> test), capped",
    ),
    "digits": TargetSpec(
        "digits",
        "image",
        "confirm",
        gt_train_per_class=80,
        gt_test_per_class=50,
        sub_sizes=SIZES,
        seeds=3,
        note="scikit-learn digits (8x8, 0-16) upscaled to 32x32 PNG; stratified 50/50 split (random_state=0), "
        "then capped for CPU time",
    ),
    "fsdd": TargetSpec(
        "fsdd",
        "audio",
        "confirm",
        gt_train_per_class=None,
        gt_test_per_class=None,
        sub_sizes=SIZES,
        seeds=3,
        pool_per_group=15,
        note="Free Spoken Digit Dataset, 6 speakers, 15 clips per (speaker, digit) = 900 clips; "
        "leave-one-speaker-out (6 folds, mean)",
    ),
    "membrane_patches": TargetSpec(
        "membrane_patches",
        "image",
        "confirm",
        gt_train_per_class=200,
        gt_test_per_class=120,
        sub_sizes=SIZES,
        seeds=3,
        note="ISBI-2012 membrane EM images: 64x64 patches labelled by the centre pixel (membrane / cell); "
        "images 0-19 train, 20-29 test",
    ),
    "textures": TargetSpec(
        "textures",
        "image",
        "confirm",
        gt_train_per_class=120,
        gt_test_per_class=60,
        sub_sizes=SIZES,
        seeds=3,
        note="20x20 grey patches of five scikit-image textures (brick, grass, gravel, moon, "
        "immunohistochemistry); train from the top half of each picture, test from the bottom half",
    ),
}

SMOKE_TARGET = TargetSpec(
    "banking77_smoke",
    "text",
    "dev",
    gt_train_per_class=10,
    gt_test_per_class=8,
    sub_sizes=(5,),
    seeds=2,
    max_classes=8,
    note="smoke: 8 seeded Banking77 intents, 10/class train, 8/class test",
)
SMOKE_IMAGE_TARGET = TargetSpec(
    "digits_smoke",
    "image",
    "dev",
    gt_train_per_class=25,
    gt_test_per_class=15,
    sub_sizes=(5,),
    seeds=2,
    note="smoke: scikit-learn digits as 32x32 PNG, 25/class train, 15/class test",
)


def available(name: str) -> str | None:
    """None when the target's source data exist, else why it is skipped."""
    need = {
        "fashion_mnist": ASSETS / "data" / "fashion_mnist_subset.npz",
        "banking77": ASSETS / "data" / "banking77" / "train.csv",
        "banking77_smoke": ASSETS / "data" / "banking77" / "train.csv",
        "fsdd": ASSETS / "audio" / "fsdd" / "recordings",
        "bccd_crops": ASSETS / "detection" / "bccd" / "BCCD" / "Annotations",
        "membrane_patches": ASSETS / "segmentation" / "membrane" / "data" / "membrane" / "train",
        "digits": None,
        "digits_smoke": None,
        "textures": None,
    }[name]
    if need is not None and not need.exists():
        return f"{need} not found"
    if name == "textures":
        try:
            import skimage.data  # noqa: F401
        except ImportError:
            return "scikit-image is not installed"
    return None


def _write_png_folder(
    root: Path, split: str, images: np.ndarray, labels: list[str], size: int | None
) -> None:
    from PIL import Image

    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = root / split / lab
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:05d}.png"
        if p.exists():
            continue
        im = Image.fromarray(img.astype(np.uint8), mode="L")
        if size is not None:
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        tmp = p.with_suffix(".tmp.png")
        im.save(tmp)
        os.replace(tmp, p)


TARGET_VERSIONS = {
    "textures": "-v2"
}  # v2: 20x20 patches (48x48 saturated at 99-100 % for every pretrained model)


def _materialise(name: str, cache: Path) -> Path:
    """Write the target's files under the cache (idempotent); returns the dataset root to read."""
    if name in ("banking77", "banking77_smoke"):
        return ASSETS / "data" / "banking77"
    root = cache / "targets" / (name + TARGET_VERSIONS.get(name, ""))
    done = root / ".complete"
    if done.exists():
        return root
    if name == "fashion_mnist":
        d = np.load(ASSETS / "data" / "fashion_mnist_subset.npz")
        names = [str(c).replace("/", "-").replace(" ", "_") for c in d["class_names"]]
        _write_png_folder(root, "train", d["x_train"], [names[i] for i in d["y_train"]], None)
        _write_png_folder(root, "test", d["x_test"], [names[i] for i in d["y_test"]], None)
    elif name in ("digits", "digits_smoke"):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        dg = load_digits()
        imgs = (dg.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
        tr, te = train_test_split(np.arange(len(imgs)), test_size=0.5, stratify=dg.target, random_state=0)
        _write_png_folder(root, "train", imgs[tr], [str(dg.target[i]) for i in tr], 32)
        _write_png_folder(root, "test", imgs[te], [str(dg.target[i]) for i in te], 32)
    elif name == "fsdd":
        src = ASSETS / "audio" / "fsdd" / "recordings"
        for wav in sorted(src.glob("*.wav")):
            digit = wav.name.split("_", 1)[0]
            dst = root / digit / wav.name
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(wav, dst)
    elif name == "bccd_crops":
        import rb_targets_extra as X

        X.write_bccd_crops(ASSETS, root)
    elif name == "membrane_patches":
        import rb_targets_extra as X

        X.write_membrane_patches(ASSETS, root)
    elif name == "textures":
        import rb_targets_extra as X

        X.write_texture_patches(root)
    else:
        raise KeyError(name)
    done.write_text("ok\n")
    return root


def _cap(samples: list, per_class: int | None, seed: int) -> list:
    from advisor.data import stratified_sample

    if per_class is None:
        return list(samples)
    return stratified_sample(samples, max_per_class=per_class, seed=seed)


def prepare(spec: TargetSpec, cache: Path) -> PreparedTarget:
    """Materialise and read one target, and build its ground-truth folds.

    The ground-truth caps use seed 12345, independent of the subsample seeds (0..seeds-1).
    """
    from advisor.data import load_dataset

    root = _materialise(spec.name, cache)
    ds = load_dataset(root, modality=spec.modality)
    samples = [s for s in ds.samples if s.label is not None]
    classes = sorted({s.label for s in samples})
    if spec.max_classes is not None and spec.max_classes < len(classes):
        import hashlib

        classes = sorted(classes, key=lambda c: hashlib.sha256(f"classes\x00{c}".encode()).hexdigest())
        classes = sorted(classes[: spec.max_classes])
        samples = [s for s in samples if s.label in set(classes)]
    gt_seed = 12345
    folds: list[Fold] = []
    if spec.name == "fsdd":
        by_speaker: dict[str, list] = defaultdict(list)
        for s in samples:
            by_speaker[Path(s.id).name.split("_")[1]].append(s)
        if spec.pool_per_group is not None:
            by_speaker = {k: _cap(v, spec.pool_per_group, gt_seed) for k, v in by_speaker.items()}
            samples = [s for v in by_speaker.values() for s in v]
        for spk in sorted(by_speaker):
            train = [s for s in samples if Path(s.id).name.split("_")[1] != spk]
            folds.append(
                Fold(
                    f"heldout-{spk}",
                    _cap(train, spec.gt_train_per_class, gt_seed),
                    _cap(by_speaker[spk], spec.gt_test_per_class, gt_seed),
                )
            )
    else:
        train = [s for s in samples if s.split == "train"]
        test = [s for s in samples if s.split == "test"]
        folds.append(
            Fold(
                "train/test",
                _cap(train, spec.gt_train_per_class, gt_seed),
                _cap(test, spec.gt_test_per_class, gt_seed),
            )
        )
    return PreparedTarget(spec, ds, folds, classes)
