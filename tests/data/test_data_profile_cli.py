"""Dataset profile and the `advisor data profile|sample` CLI (JSON parsed), plus the shared real datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_synth import write_png, write_wav
from typer.testing import CliRunner

from advisor.cli.main import app
from advisor.data import load_audio, load_dataset, load_image, profile_dataset, stratified_sample

runner = CliRunner()


def test_profile_image(tmp_path):
    for i in range(6):
        write_png(tmp_path / "a" / f"{i}.png", size=(10 + i, 20))
    write_png(tmp_path / "b" / "0.png", size=(12, 20), mode="L", color=0)
    p = profile_dataset(load_dataset(tmp_path))
    d = p.to_dict()
    assert d["class_counts"] == {"a": 6, "b": 1}
    assert d["imbalance_ratio"] == 6.0
    assert d["singleton_classes"] == ["b"]
    assert d["image"]["width_px"]["min"] == 10 and d["image"]["width_px"]["max"] == 15
    assert d["image"]["modes"] == {"RGB": 6, "L": 1}
    json.dumps(d)  # JSON-able as is


def test_profile_text_and_splits(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\none two three,a\nfour,b\nfour,b\n")
    (tmp_path / "val.csv").write_text("text,label\nfive six,a\n")
    p = profile_dataset(load_dataset(tmp_path))
    assert p.split_counts == {"train": 3, "val": 1}
    assert p.missing_in_split == {"val": ["b"]}
    assert p.text["words"]["max"] == 3 and p.text["chars"]["min"] == 4
    assert p.text["n_duplicates"] == 1
    assert any("'val' split" in w for w in p.warnings)


def test_profile_audio(audio_folder):
    write_wav(audio_folder / "low" / "long.wav", seconds=0.5, sr=16000)
    p = profile_dataset(load_dataset(audio_folder))
    assert p.audio["duration_s"]["max"] == 0.5 and p.audio["duration_s"]["min"] == 0.1
    assert p.audio["sample_rates_hz"] == {"8000": 6, "16000": 1}


def test_cli_profile_json(image_folder):
    (image_folder / "dog" / "bad.png").write_bytes(b"nope")
    r = runner.invoke(app, ["data", "profile", str(image_folder), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["n_samples"] == 9 and d["n_classes"] == 3 and d["layout"] == "imagefolder"
    assert d["skipped"] == [
        {
            "path": str(image_folder / "dog" / "bad.png"),
            "reason": d["skipped"][0]["reason"],
            "code": "corrupt",
        }
    ]


def test_cli_profile_human_and_errors(image_folder, tmp_path):
    r = runner.invoke(app, ["data", "profile", str(image_folder)])
    assert r.exit_code == 0 and "imagefolder" in r.stdout and "width (px)" in r.stdout
    r = runner.invoke(app, ["data", "profile", str(tmp_path / "missing")])
    out = " ".join(r.output.split())  # Rich wraps long lines
    assert r.exit_code == 1 and "does not exist" in out and "hint:" in out and "Traceback" not in out
    r = runner.invoke(app, ["data", "profile", str(image_folder), "--modality", "video"])
    assert r.exit_code == 1 and "unknown modality" in " ".join(r.output.split())


def test_cli_sample_json(image_folder):
    r = runner.invoke(
        app, ["data", "sample", str(image_folder), "--max-per-class", "2", "--seed", "5", "-f", "json"]
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    ids = [s["id"] for s in d["samples"]]
    expect = [s.id for s in stratified_sample(load_dataset(image_folder), max_per_class=2, seed=5)]
    assert ids == expect and d["n_selected"] == 6 and d["n_total"] == 9


# ------------------------------------------------------------------------------ real data in ../shared/assets


def test_fashion_mnist_as_image_folder(assets, tmp_path):
    from PIL import Image

    npz = np.load(assets / "data" / "fashion_mnist_subset.npz")
    names = [str(n) for n in npz["class_names"]]
    x, y = npz["x_train"], npz["y_train"]
    for split, idx in (("train", range(0, 2000, 10)), ("val", range(5, 2000, 20))):
        for i in idx:
            cls = names[int(y[i])].replace("/", "_")
            (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(tmp_path / split / cls / f"{i:05d}.png")
    ds = load_dataset(tmp_path)
    assert ds.layout == "split-imagefolder" and len(ds.classes) == 10 and len(ds) == 300
    sub = stratified_sample(ds, max_per_class=3, seed=0, split="val")
    assert len(sub) == 30 and {s.split for s in sub} == {"val"}
    im = load_image(sub[0])
    assert im.mode == "RGB" and im.size == (28, 28)
    assert np.array_equal(np.asarray(im)[..., 0], x[int(sub[0].path.stem)])


def test_banking77(assets):
    ds = load_dataset(assets / "data" / "banking77" / "train.csv")
    assert ds.modality == "text" and len(ds.classes) == 77 and len(ds) > 10_000
    assert ds.samples[0].text and ds.samples[0].label == "card_arrival"
    both = load_dataset(assets / "data" / "banking77")
    assert both.splits == ["train", "test"] and both.classes == ds.classes
    sub = stratified_sample(both, max_samples=154, split="test")
    assert len(sub) == 154 and len({s.label for s in sub}) == 77


def test_fsdd_manifest_and_class_folder(assets, tmp_path):
    rec = assets / "audio" / "fsdd" / "recordings"
    files = sorted(rec.glob("[0-2]_*_1.wav"))
    assert files
    lines = ["path,label"] + [f"{f},{f.name.split('_')[0]}" for f in files]  # absolute paths
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "manifest.csv")
    assert (ds.modality, ds.layout, ds.classes) == ("audio", "manifest", ["0", "1", "2"])
    for f in files[:4]:
        (tmp_path / "cls" / f.name[0]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cls" / f.name[0] / f.name).symlink_to(f)
    ds2 = load_dataset(tmp_path / "cls")
    assert ds2.layout == "imagefolder" and ds2.media_info[ds2.samples[0].id]["sample_rate"] == 8000
    wave = load_audio(ds2.samples[0], 16000)
    frames = ds2.media_info[ds2.samples[0].id]["frames"]
    assert wave.dtype == np.float32 and wave.shape == (2 * frames,)


@pytest.mark.parametrize("fmt", ["json"])
def test_cli_profile_demo_dataset(fmt):
    from advisor.demo import demo_dataset_path

    r = runner.invoke(app, ["data", "profile", str(demo_dataset_path()), "--format", fmt])
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["n_samples"] == 400 and d["n_skipped"] == 0 and d["imbalance_ratio"] == 1.0
