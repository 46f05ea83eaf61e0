"""Fine-tuning on CUDA (skipped without a GPU): bf16 autocast, CUDA peak memory, and the same learning result."""

from __future__ import annotations

import pytest
import torch
from finetune_helpers import make_task

from advisor.finetune.config import FinetuneConfig
from advisor.finetune.loop import train


@pytest.mark.gpu
def test_bf16_autocast_training_on_cuda():
    out = train(
        make_task(),
        FinetuneConfig(unfreeze="all", epochs=4, batch_size=8, lr=0.05, patience=0),
        device="cuda",
    )
    assert out.precision == "bf16" and out.device.startswith("cuda")
    assert out.peak_memory_kind == "cuda_max_allocated" and out.peak_memory_mb > 0
    assert out.best_val_accuracy >= 0.9
    assert next(out.head.parameters()).device.type == "cuda"
    assert torch.cuda.is_available()
