"""The fine-tuning entry point: dataset + model id + config -> FinetuneResult (split, augmentation, provenance)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import DatasetError, ModelLoadError, UsageError
from advisor.finetune.augment import augment_audio, augment_image
from advisor.finetune.config import FinetuneConfig, FinetuneResult, SplitSource
from advisor.finetune.split import VAL_SPLIT_NAMES, _split, split_samples  # noqa: F401  (re-exported)
from advisor.io import atomic_write_json
from advisor.models.ids import ModelId
from advisor.runtime import resolve_device
from advisor.versions import library_versions

if TYPE_CHECKING:
    from advisor.data import Dataset, Sample
    from advisor.finetune.loop import ProgressCallback, TrainOutcome, TrainTask
    from advisor.models import LoadedModel

RESULT_FILE = "result.json"


UNTRAINABLE_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}
TRAINABLE_RUNTIMES = ("torch", "torchscript")  # torch.export programs are inference graphs (no train mode)


def untrainable_reason(model_id: str, runtime: str | None = None) -> str | None:
    """Why `finetune` would refuse this model, or None when it can be fine-tuned (as far as is known).

    The check `finetune` itself applies: a local ONNX/TFLite file is refused from its name; any other model
    by the runtime it loads on (``runtime``: the loaded model's, e.g. from a feature-cache signature; None =
    not known, so only the file check applies).
    """
    try:
        path = ModelId.parse(model_id).path  # the registry's rule: local: ids and bare paths are files
    except UsageError:
        path = None
    file_runtime = UNTRAINABLE_SUFFIXES.get(path.suffix.lower()) if path is not None else None
    if file_runtime:
        return (
            f"{model_id} is a {file_runtime} file, which cannot be fine-tuned (no trainable PyTorch module)"
        )
    if runtime is not None and runtime not in TRAINABLE_RUNTIMES:
        return f"{model_id} runs on the {runtime} runtime, which cannot be fine-tuned (no trainable PyTorch module)"
    return None


def trainable_module(model: LoadedModel) -> Any:
    """The model's torch module, or a clear error when its source cannot be fine-tuned.

    Raises:
        ModelLoadError: runtime is not torch (ONNX, TFLite, ...), no module, or no parameters.
    """
    runtime = getattr(model, "runtime", None)
    module = getattr(model, "module", None)
    if runtime not in TRAINABLE_RUNTIMES or module is None:
        raise ModelLoadError(
            f"{model.model_id} runs on the {runtime or 'unknown'} runtime, which cannot be fine-tuned "
            "(no trainable PyTorch module)",
            hint="fine-tune a PyTorch source (timm:, torchvision:, hf:, pkg:) or compare it with a linear probe "
            "(`advisor recommend`)",
        )
    if not any(True for _ in module.parameters()):
        raise ModelLoadError(
            f"{model.model_id} has no trainable parameters",
            hint="fine-tune a PyTorch model with learnable weights",
        )
    return module


def _refuse_untrainable_file(model_id: str) -> None:
    """Refuse a local model file whose format has no trainable module, before spending time loading it."""
    reason = untrainable_reason(model_id)
    if reason is not None:
        raise ModelLoadError(
            reason,
            hint="fine-tune a PyTorch source (timm:, torchvision:, hf:, pkg:, or a .safetensors/.pt2 file) or "
            "compare it with a linear probe (`advisor recommend`)",
        )


def _model_blocks(model: LoadedModel) -> list[Any]:
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        return []
    return list(blocks() if callable(blocks) else blocks)


def _sample_rate(model: LoadedModel) -> int:
    sr = getattr(model, "sample_rate", None)
    if sr is None:
        try:
            sr = model.preprocess_signature().get("sample_rate")
        except Exception:
            sr = None
    return int(sr or 16000)


def _loader_for(modality: str, model: LoadedModel):
    if modality == "image":
        from advisor.data import load_image

        return load_image
    if modality == "text":

        def load_text(sample: Sample) -> str:
            if sample.text is None:
                raise DatasetError(f"text sample {sample.id} has no text")
            return sample.text

        return load_text
    if modality == "audio":
        from advisor.data import load_audio

        sr = _sample_rate(model)
        return lambda sample: load_audio(sample, sr)
    raise UsageError(
        f"fine-tuning does not support the {modality!r} modality", hint="use image, text or audio data"
    )


def _skip_errors() -> tuple[type[BaseException], ...]:
    from advisor.data import SkipItem

    return (SkipItem,)


# ---------------------------------------------------------------------------------------------- entry point


def finetune(
    dataset: Dataset | str | Path,
    model_id: str | LoadedModel,
    config: FinetuneConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    offline: bool | None = None,
    pretrained: bool = True,
    callback: ProgressCallback | None = None,
) -> FinetuneResult:
    """Fine-tune a model on a labelled dataset and report validation accuracy with a 95 % Wilson interval.

    A new linear head sized to the dataset's classes goes on top of the model's pooled features; the backbone
    is frozen, partly or wholly unfrozen per ``config.unfreeze``. See `advisor.finetune.loop.train` for the
    loop, checkpoints and resume semantics.

    Args:
        dataset: an `advisor.data.Dataset` or a path for `advisor.data.load_dataset`.
        model_id: a model id for `advisor.models.load_model`, or an already loaded model (it is trained in place).
        config: the run config (defaults: head only, 10 epochs).
        out_dir: where ``best.safetensors``, ``state.pt`` and ``result.json`` go (None: nothing is written).
        resume: continue the run stored in ``out_dir``.
        offline: passed to `load_model`.
        pretrained: False builds the model with random weights (smoke tests; the result says so).
        callback: progress events (see `train`).

    Returns:
        The typed result (also written to ``out_dir/result.json``).

    Raises:
        ModelLoadError: the model's source cannot be fine-tuned (ONNX/TFLite runtime) or fails to load.
        DatasetError: unusable data; UsageError: bad options or a mismatched resume.
    """
    from advisor.finetune.loop import train

    config = config or FinetuneConfig()
    if isinstance(dataset, (str, Path)):
        from advisor.data import load_dataset

        dataset = load_dataset(dataset, group_column=config.group_column)
    if resume and out_dir is None:
        raise UsageError("--resume needs --out (the folder of the run to continue)")

    model, device = _training_model(model_id, config, pretrained=pretrained, offline=offline)
    module = trainable_module(model)
    if dataset.modality != model.modality:
        raise UsageError(
            f"{model.model_id} is a {model.modality} model but {dataset.root} holds {dataset.modality} data",
            hint=f"pick a {dataset.modality} model (`advisor catalog list --modality {dataset.modality}`)",
        )
    train_s, val_s, split_source, notes, group_summary = _split(dataset, config)
    task = _train_task(dataset, model, module, train_s, val_s)
    if not getattr(model, "pretrained", True):
        notes.append(f"{model.model_id} was randomly initialised (no pretrained weights)")
    out = train(task, config, device=device, out_dir=out_dir, resume=resume, callback=callback)
    result = _result(dataset, model, module, config, out, (train_s, val_s, split_source, notes), out_dir)
    result.groups = group_summary
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / RESULT_FILE, result.to_dict())
    return result


def _training_model(
    model_id: str | LoadedModel, config: FinetuneConfig, *, pretrained: bool, offline: bool | None
) -> tuple[LoadedModel, Any]:
    """The model to train (loaded, or the given one moved to the config's device) and that device."""
    if isinstance(model_id, str):
        _refuse_untrainable_file(model_id)
        from advisor.models import load_model

        device = resolve_device(config.device)
        return load_model(model_id, device=str(device), pretrained=pretrained, offline=offline), device
    model = model_id
    device = resolve_device(config.device)
    if callable(getattr(model, "to", None)):
        model.to(device)  # keep LoadedModel.device in step with where the module trains
    return model, device


def _train_task(
    dataset: Dataset, model: LoadedModel, module: Any, train_s: list[Sample], val_s: list[Sample]
) -> TrainTask:
    """The loop's view of the model and the split: items, class indices, loading, preprocessing, augmentation."""
    from advisor.finetune.loop import Split, TrainTask

    cidx = {c: i for i, c in enumerate(dataset.classes)}

    def split(samples: Sequence[Sample]) -> Split:
        return Split(
            items=list(samples),
            labels=np.array([cidx[str(s.label)] for s in samples], dtype=np.int64),
            ids=[s.id for s in samples],
        )

    return TrainTask(
        backbone=module,
        feature_dim=int(model.feature_dim),
        blocks=_model_blocks(model),
        classes=list(dataset.classes),
        load=_loader_for(dataset.modality, model),
        preprocess=model.preprocess,
        train=split(train_s),
        val=split(val_s),
        augment={"image": augment_image, "audio": augment_audio}.get(dataset.modality),
        skip_errors=_skip_errors(),
        meta={
            "model_id": model.model_id,
            "modality": dataset.modality,
            "dataset_fingerprint": str(getattr(dataset, "fingerprint", "")),
        },
    )


# The `TrainOutcome` fields a `FinetuneResult` keeps as they are, under the same names.
_FROM_OUTCOME = (
    "epochs_planned",
    "best_epoch",
    "stopped_reason",
    "total_seconds",
    "peak_memory_mb",
    "peak_memory_kind",
    "device",
    "precision",
    "micro_batch_size",
    "grad_accum_steps",
    "resumed_from_epoch",
    "history",
)


def _result(
    dataset: Dataset,
    model: LoadedModel,
    module: Any,
    config: FinetuneConfig,
    out: TrainOutcome,
    split: tuple[list[Sample], list[Sample], SplitSource, list[str]],
    out_dir: str | Path | None,
) -> FinetuneResult:
    """The typed result of a run, with its provenance."""
    from advisor.finetune.loop import wilson_interval
    from advisor.finetune.unfreeze import count_params

    train_s, val_s, split_source, notes = split
    classes = list(dataset.classes)
    full = [h.seconds for h in out.history if not h.partial] or [h.seconds for h in out.history]
    return FinetuneResult(
        model_id=model.model_id,
        modality=dataset.modality,
        classes=classes,
        n_train=len(train_s),
        n_val=len(val_s),
        split_source=split_source,
        val_split=split_source,
        unfreeze=config.unfreeze,
        trainable_params=count_params(module, trainable_only=True) + count_params(out.head),
        total_params=count_params(module) + count_params(out.head),
        epochs_run=len(out.history),
        val_accuracy=out.best_val_accuracy,
        val_accuracy_ci=wilson_interval(out.best_val_correct, out.best_val_n),
        val_loss=out.best_val_loss,
        per_class_accuracy=dict(zip(classes, out.per_class_accuracy, strict=False)),
        seconds_per_epoch=sum(full) / max(1, len(full)),
        checkpoint=str(out.checkpoint) if out.checkpoint else None,
        out_dir=str(out_dir) if out_dir is not None else None,
        config=config.to_dict(),
        seed=config.seed,
        dataset_fingerprint=getattr(dataset, "fingerprint", None),
        versions=library_versions(),
        notes=notes + out.notes,
        pretrained=bool(getattr(model, "pretrained", True)),
        model_revision=getattr(model, "revision", None),
        **{k: getattr(out, k) for k in _FROM_OUTCOME},
    )


def compare_with_probe(
    finetune_result: FinetuneResult | dict[str, Any],
    probe_accuracy: float,
    probe_ci: tuple[float, float] | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Say whether fine-tuning paid off over a linear probe on frozen features, and by how much.

    The verdict is ``better`` when the fine-tuned accuracy's 95 % interval lies wholly above the probe's
    (or above the probe's point estimate when no probe interval is given), ``worse`` when wholly below, and
    ``no clear difference`` otherwise. The two numbers usually come from different evaluation protocols
    (hold-out vs cross-validation), so read small gains with care.

    Returns:
        dict with finetune_accuracy, finetune_ci, probe_accuracy, probe_ci, gain (absolute), gain_pp
        (percentage points), relative_error_reduction, verdict, paid_off (bool), summary (one sentence).
    """
    r = finetune_result.to_dict() if isinstance(finetune_result, FinetuneResult) else dict(finetune_result)
    ft, ft_ci = float(r["val_accuracy"]), tuple(float(x) for x in r["val_accuracy_ci"])
    pci = tuple(float(x) for x in probe_ci) if probe_ci is not None else (probe_accuracy, probe_accuracy)
    gain = ft - probe_accuracy
    if ft_ci[0] > pci[1]:
        verdict = "better"
    elif ft_ci[1] < pci[0]:
        verdict = "worse"
    else:
        verdict = "no clear difference"
    err_probe = 1.0 - probe_accuracy
    rel = (gain / err_probe) if err_probe > 0 else None
    n_ep = r.get("epochs_run")
    setting = str(r.get("unfreeze")) + (
        f", {n_ep} epoch{'s' if n_ep != 1 else ''}" if n_ep is not None else ""
    )
    summary = {
        "better": f"fine-tuning ({setting}) paid off: {ft:.1%} vs {probe_accuracy:.1%} for the probe "
        f"(+{gain * 100:.1f} points)",
        "worse": f"fine-tuning ({setting}) did worse than the probe: {ft:.1%} vs {probe_accuracy:.1%} "
        f"({gain * 100:+.1f} points)",
        "no clear difference": f"fine-tuning ({setting}) is within noise of the probe: {ft:.1%} vs "
        f"{probe_accuracy:.1%} ({gain * 100:+.1f} points; the 95 % intervals overlap)",
    }[verdict]
    return {
        "model_id": r.get("model_id"),
        "unfreeze": r.get("unfreeze"),
        "finetune_accuracy": ft,
        "finetune_ci": list(ft_ci),
        "probe_accuracy": float(probe_accuracy),
        "probe_ci": list(pci) if probe_ci is not None else None,
        "gain": gain,
        "gain_pp": gain * 100,
        "relative_error_reduction": rel,
        "verdict": verdict,
        "paid_off": verdict == "better",
        "finetune_seconds": r.get("total_seconds"),
        "epochs_run": n_ep,
        "summary": summary,
    }


def load_result(out_dir: str | Path) -> FinetuneResult:
    """Read ``result.json`` from a fine-tuning out dir.

    Raises:
        ResultsError: missing or unreadable.
    """
    import json

    from advisor.errors import ResultsError

    path = Path(out_dir) / RESULT_FILE
    try:
        return FinetuneResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResultsError(
            f"cannot read fine-tuning result {path}: {e}", hint="run `advisor finetune --out DIR` first"
        ) from e


def load_finetuned(
    out_dir: str | Path,
    *,
    device: str = "auto",
    offline: bool | None = None,
    model: LoadedModel | None = None,
) -> tuple[LoadedModel, Any, list[str]]:
    """Rebuild a fine-tuned model from its run folder: the source model with the kept backbone tensors applied,
    plus the linear head.

    Args:
        out_dir: a folder written by `finetune(..., out_dir=...)`.
        device: where to put the model.
        offline: passed to `load_model`.
        model: the already loaded source model to modify in place (skips `load_model`).

    Returns:
        (model in eval mode, head ``torch.nn.Linear`` on the same device, class names).

    Raises:
        ResultsError: missing result or checkpoint; ModelLoadError: the source model cannot be loaded.
    """
    import torch

    from advisor.errors import ResultsError
    from advisor.finetune.loop import load_best_checkpoint

    result = load_result(out_dir)
    if not result.checkpoint:
        raise ResultsError(f"{out_dir} holds no checkpoint", hint="rerun `advisor finetune` with --out")
    ckpt = Path(result.checkpoint)
    if not ckpt.exists():
        ckpt = Path(out_dir) / Path(result.checkpoint).name  # the run folder was moved
    head_sd, bb_sd, _ = load_best_checkpoint(ckpt)
    if model is None:
        from advisor.models import load_model

        model = load_model(
            result.model_id, device=str(resolve_device(device)), pretrained=True, offline=offline
        )
    module = trainable_module(model)
    missing = set(bb_sd) - set(module.state_dict())
    if missing:
        raise ResultsError(f"{ckpt} does not match {result.model_id} ({len(missing)} unknown tensors)")
    dev = next(module.parameters()).device
    module.load_state_dict({k: v.to(dev) for k, v in bb_sd.items()}, strict=False)
    head = torch.nn.Linear(int(model.feature_dim), len(result.classes)).to(dev)
    head.load_state_dict(head_sd)
    module.eval()
    head.eval()
    return model, head, list(result.classes)


def evaluate_finetuned(
    out_dir: str | Path,
    dataset: Dataset,
    *,
    samples: Sequence[Sample] | None = None,
    split: str | None = "test",
    batch_size: int = 64,
    device: str = "auto",
    offline: bool | None = None,
    model: LoadedModel | None = None,
) -> dict[str, Any]:
    """Accuracy of a fine-tuned run's kept checkpoint on labelled samples it did not select on.

    Args:
        out_dir: the run folder.
        dataset: the dataset the samples come from (its modality decides how items load).
        samples: the samples to score; default: the dataset's ``split`` samples (all labelled ones if None).
        split, batch_size, device, offline, model: see `load_finetuned`.

    Returns:
        dict with accuracy, accuracy_ci (95 % Wilson), n, correct, per_class_accuracy, skipped.

    Raises:
        DatasetError: no labelled samples to score, or class names unknown to the run.
    """
    import torch

    from advisor.finetune.loop import wilson_interval

    model, head, classes = load_finetuned(out_dir, device=device, offline=offline, model=model)
    if samples is None:
        samples = [s for s in dataset.samples if s.label is not None and (split is None or s.split == split)]
    samples = [s for s in samples if s.label is not None]
    if not samples:
        raise DatasetError(
            f"{dataset.root}: no labelled samples to evaluate (split {split!r})",
            hint="pass samples=..., or split=None to use every labelled sample",
        )
    unknown = sorted({str(s.label) for s in samples} - set(classes))
    if unknown:
        raise DatasetError(f"{dataset.root}: labels unknown to the fine-tuned head: {', '.join(unknown[:5])}")
    cidx = {c: i for i, c in enumerate(classes)}
    load = _loader_for(dataset.modality, model)
    skip = _skip_errors()
    dev = next(head.parameters()).device
    correct = skipped = 0
    per_n = np.zeros(len(classes), dtype=np.int64)
    per_c = np.zeros(len(classes), dtype=np.int64)
    with torch.no_grad():
        for s0 in range(0, len(samples), batch_size):
            items, ys = [], []
            for s in samples[s0 : s0 + batch_size]:
                try:
                    items.append(load(s))
                except skip:
                    skipped += 1
                    continue
                ys.append(cidx[str(s.label)])
            if not items:
                continue
            batch = model.preprocess(items)
            batch = (batch,) if isinstance(batch, torch.Tensor) else batch
            feats = model.module(*(t.to(dev) if isinstance(t, torch.Tensor) else t for t in batch))
            pred = head(feats.float()).argmax(1).cpu().numpy()
            y = np.asarray(ys)
            hit = pred == y
            correct += int(hit.sum())
            np.add.at(per_n, y, 1)
            np.add.at(per_c, y, hit.astype(np.int64))
    n = int(per_n.sum())
    return {
        "accuracy": correct / n if n else None,
        "accuracy_ci": list(wilson_interval(correct, n)),
        "n": n,
        "correct": correct,
        "per_class_accuracy": {
            c: (float(k / m) if m else None) for c, k, m in zip(classes, per_c, per_n, strict=True)
        },
        "skipped": skipped,
    }
