"""Fine-tuning on a real image folder read by advisor.data (augmentation on PIL images, unreadable items skipped)."""

from __future__ import annotations

from finetune_helpers import FakeImageModel, colour_image_folder

from advisor.data import load_dataset
from advisor.finetune import FinetuneConfig, evaluate_finetuned, finetune


def test_image_folder_finetune_with_augmentation_and_a_broken_file(tmp_path):
    root = colour_image_folder(tmp_path / "imgs", n_per_class=10)
    ds = load_dataset(root)
    assert ds.modality == "image" and ds.classes == ["blue", "green", "red"]
    # a file that breaks after scanning: load_image raises SkipItem and the loop skips it
    victim = next(s for s in ds.samples if s.label == "red")
    victim.path.write_bytes(b"not a png any more")
    cfg = FinetuneConfig(unfreeze="last-1", epochs=3, batch_size=8, lr=0.05, seed=0)
    res = finetune(ds, FakeImageModel(), cfg, out_dir=tmp_path / "run")
    assert res.modality == "image" and res.n_train + res.n_val == 30
    assert res.val_accuracy >= 0.8
    assert any("1 item could not be read" in n and victim.id in n for n in res.notes)
    ev = evaluate_finetuned(tmp_path / "run", ds, split=None, model=FakeImageModel())
    assert ev["skipped"] == 1 and ev["n"] == 29 and ev["accuracy"] >= 0.8
