"""Fine-tuning on an audio folder read by advisor.data (load_audio at the model's rate, light augmentation)."""

from __future__ import annotations

from finetune_helpers import FakeAudioModel, tone_folder

from advisor.data import load_dataset
from advisor.finetune import FinetuneConfig, finetune


def test_audio_folder_finetune(tmp_path):
    ds = load_dataset(tone_folder(tmp_path / "tones", n_per_class=10))
    assert ds.modality == "audio"
    res = finetune(ds, FakeAudioModel(), FinetuneConfig(unfreeze="head", epochs=3, batch_size=8, lr=0.05))
    assert res.modality == "audio" and res.classes == ["high", "low"]
    assert res.val_accuracy >= 0.75 and res.n_val == 4
