"""Fine-tuning of catalog models on a user's labelled data: config, loop, unfreezing and the library entry point."""

from __future__ import annotations

from advisor.finetune.config import EpochRecord, FinetuneConfig, FinetuneResult, parse_unfreeze
from advisor.finetune.run import (
    compare_with_probe,
    evaluate_finetuned,
    finetune,
    load_finetuned,
    load_result,
    split_samples,
    untrainable_reason,
)

__all__ = [
    "EpochRecord",
    "FinetuneConfig",
    "FinetuneResult",
    "compare_with_probe",
    "evaluate_finetuned",
    "finetune",
    "load_finetuned",
    "load_result",
    "parse_unfreeze",
    "split_samples",
    "untrainable_reason",
]
