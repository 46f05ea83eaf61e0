"""One fine-tuning run as an object: model and head set-up, the epoch loop, OOM micro-batching, early stopping,
the budget, and the per-epoch state that a killed run resumes from (driven by `advisor.finetune.loop.train`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advisor.errors import UsageError
from advisor.finetune.checkpoint import (
    BEST_FILE,
    STATE_FILE,
    STATE_FORMAT,
    cpu_clone,
    load_best_checkpoint,
    load_state,
    rng_state,
    save_best_checkpoint,
    save_state,
    set_rng_state,
)
from advisor.finetune.config import EpochRecord, FinetuneConfig, StopReason
from advisor.finetune.task import (
    ProgressCallback,
    TrainingOutOfMemory,
    TrainOutcome,
    TrainTask,
    content_key,
    epoch_seed,
    example_batch,
    index_batches,
    lr_factor,
    make_loader,
    peak_memory,
    resolve_precision,
)
from advisor.finetune.unfreeze import (
    UnfreezePlan,
    apply_unfreeze,
    build_param_groups,
    freeze_unused,
    set_train_modes,
)
from advisor.runtime import autocast as runtime_autocast
from advisor.runtime import free_device_memory, is_oom_error


def _fresh_best() -> dict[str, Any]:
    return {"epoch": 0, "acc": -1.0, "loss": math.inf, "correct": 0, "n": 0, "per_class": []}


@dataclass
class _State:
    """The mutable part of a run; all of it goes into ``state.pt`` (the schedule lives in `_Run.sched`)."""

    micro: int
    epoch_done: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_fresh_best)
    bad_epochs: int = 0
    elapsed_before: float = 0.0
    finished: StopReason | None = None
    resumed_from: int | None = None
    notes: list[str] = field(default_factory=list)


Batch = tuple[torch.Tensor, ...]
Rows = Iterator[tuple[tuple[Batch, torch.Tensor, Any] | None, list[int]]]


class TrainingRun:
    """One training run: model, optimiser, schedule, feature caches and the resumable state (see `train`)."""

    def __init__(
        self, task: TrainTask, config: FinetuneConfig, device: torch.device, out_dir: str | Path | None
    ) -> None:
        self.task, self.config, self.device = task, config, device
        self.start_wall = time.perf_counter()
        self.emit: ProgressCallback = lambda _e: None
        self.n_classes = len(task.classes)
        self.precision = resolve_precision(config, device)
        self.autocast = runtime_autocast(device, self.precision)
        self.out = Path(out_dir) if out_dir is not None else None
        self.state_path = self.out / STATE_FILE if self.out else None
        self.best_path = self.out / BEST_FILE if self.out else None
        self.st = _State(micro=config.batch_size)
        self.best_mem: dict[str, torch.Tensor] | None = None
        self.skipped: set[str] = set()
        # Frozen backbone: validation features never change, so compute them once; with no augmentation
        # either, training features never change and are computed once too.
        self.val_feat_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.train_cache: dict[str, Any] = {}
        self._build_model()
        self.cache_train = self.plan.frozen_backbone and not (config.augments and task.augment is not None)
        self.data_key = content_key(
            {
                "train": [task.train.ids, task.train.labels.tolist()],
                "val": [task.val.ids, task.val.labels.tolist()],
                "classes": task.classes,
            }
        )
        self.run_key = content_key(config.training_key())
        self.budget_s = config.budget_minutes * 60 if config.budget_minutes else None

    def _build_model(self) -> None:
        """Unfreeze, move to the device, make the head, the AdamW groups and the warm-up + cosine schedule."""
        task, config, device = self.task, self.config, self.device
        self.plan: UnfreezePlan = apply_unfreeze(task.backbone, task.blocks, config.unfreeze)
        task.backbone.to(device)
        if not self.plan.frozen_backbone:
            example = example_batch(task)
            if example is not None:
                unused = freeze_unused(task.backbone, self.plan, tuple(t.to(device) for t in example))
                if unused:
                    self.st.notes.append(
                        f"{len(unused)} parameter tensors the features never use stay frozen ({unused[0]}, ...)"
                    )
        torch.manual_seed(config.seed)
        self.head = nn.Linear(task.feature_dim, self.n_classes).to(device)
        groups = build_param_groups(
            self.head,
            task.backbone,
            lr=config.head_lr,
            backbone_lr_mult=config.backbone_lr_mult,
            weight_decay=config.weight_decay,
        )
        self.optimizer = torch.optim.AdamW(groups, lr=config.head_lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = math.ceil(len(task.train.items) / config.batch_size)
        total = config.max_epochs * self.steps_per_epoch
        warmup = round(config.warmup_fraction * total) if config.warmup_fraction > 0 else 0
        # One dict, updated in place (resume, budget re-planning): the schedule's lambda reads it.
        sched = self.sched = {"total": total, "epochs": config.max_epochs, "warmup": warmup}
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, sched["total"], sched["warmup"])
        )

    def restore(self, resume: bool) -> None:
        """Continue the run stored in the out dir (``resume``), or refuse to overwrite it."""
        st, out = self.st, self.out
        if self.state_path is None or not self.state_path.exists():
            if resume and out is not None:
                st.notes.append(f"--resume given but {out} held no state; started a fresh run")
            return
        if not resume:
            raise UsageError(
                f"{out} already holds a fine-tuning run",
                hint="pass --resume to continue it, or choose another --out",
            )
        saved = load_state(self.state_path)
        if saved["run_key"] != self.run_key or saved["data_key"] != self.data_key:
            what = "config" if saved["run_key"] != self.run_key else "data split"
            diff = ""
            if what == "config":
                old = saved.get("config", {})
                diff = ": " + ", ".join(
                    f"{k} {old.get(k)!r} -> {v!r}"
                    for k, v in self.config.training_key().items()
                    if old.get(k) != v
                )
            raise UsageError(
                f"cannot resume {out}: the {what} differs from the stored run{diff}",
                hint="resume with the same options, or choose another --out",
            )
        self.head.load_state_dict(saved["head"])
        self.task.backbone.load_state_dict(saved["backbone"], strict=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.sched.update(saved["sched"])
        self.scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        st.epoch_done = int(saved["epoch"])
        st.history = [EpochRecord(**h) for h in saved["history"]]
        st.best = dict(saved["best"])
        st.bad_epochs = int(saved["bad_epochs"])
        st.micro = int(saved["micro_batch"])
        st.elapsed_before = float(saved["elapsed_seconds"])
        st.finished = saved.get("finished")
        st.notes = list(saved.get("notes", []))
        st.resumed_from = st.epoch_done

    # ------------------------------------------------------------------------------------------ forward passes

    def elapsed(self) -> float:
        return self.st.elapsed_before + (time.perf_counter() - self.start_wall)

    def to_dev(self, batch: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch
        )

    def features(self, batch: Batch) -> torch.Tensor:
        if self.plan.frozen_backbone:
            with torch.no_grad():
                return self.task.backbone(*batch)
        return self.task.backbone(*batch)

    def _backbone_outputs(self, split: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(features as float32, labels, item indices) per micro-batch of `split`, in order, without gradients
        or augmentation; items that fail to load are added to ``skipped``."""
        batches = index_batches(len(split.items), max(1, self.st.micro))
        loader = make_loader(
            self.task,
            split,
            batches,
            seed=self.config.seed,
            epoch=0,
            augment=False,
            workers=self.config.num_workers,
        )
        with torch.no_grad():
            for got, bad in loader:
                self.skipped.update(split.ids[i] for i in bad)
                if got is None:
                    continue
                batch, y, idx = got
                with self.autocast:
                    f = self.task.backbone(*self.to_dev(batch))
                yield f.float(), y, idx

    def _fill_train_cache(self) -> None:
        rows: dict[int, int] = {}
        feats: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        for f, y, idx in self._backbone_outputs(self.task.train):
            for i in idx.tolist():
                rows[i] = len(rows)
            feats.append(f)
            labels.append(y)
        self.train_cache.update(
            rows=rows,
            feats=torch.cat(feats) if feats else None,
            labels=torch.cat(labels) if labels else None,
        )

    def cached_train_batches(self, order: np.ndarray) -> Rows:
        """Training batches in ``order`` from the training features computed once (frozen, no augmentation)."""
        if not self.train_cache:
            self._fill_train_cache()
        rows, feats, labels = self.train_cache["rows"], self.train_cache["feats"], self.train_cache["labels"]
        for b in index_batches(len(order), self.config.batch_size, order):
            r = [rows[i] for i in b if i in rows]
            bad = [i for i in b if i not in rows]
            if not r:
                yield None, bad
                continue
            r_t = torch.tensor(r, device=feats.device)
            yield ((feats[r_t],), labels[r_t.cpu()], None), bad

    def _val_chunks(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Validation (features, labels) chunks; computed once when the backbone is frozen."""
        if self.val_feat_cache is not None:
            return self.val_feat_cache
        chunks = [(f, y.to(self.device)) for f, y, _ in self._backbone_outputs(self.task.val)]
        if self.plan.frozen_backbone:
            self.val_feat_cache = chunks
        return chunks

    def evaluate(self) -> tuple[float, float, int, int, list[float | None]]:
        """(mean loss, accuracy, correct, n, per-class accuracy) on the validation split."""
        set_train_modes(self.task.backbone, False)
        self.head.eval()
        total_loss, correct, n = 0.0, 0, 0
        per_class_correct = np.zeros(self.n_classes, dtype=np.int64)
        per_class_n = np.zeros(self.n_classes, dtype=np.int64)
        chunks = self._val_chunks()
        with torch.no_grad():
            for f, y in chunks:
                with self.autocast:
                    logits = self.head(f)
                logits = logits.float()
                total_loss += F.cross_entropy(logits, y, reduction="sum").item()
                hit = logits.argmax(1) == y
                correct += int(hit.sum())
                n += len(y)
                np.add.at(per_class_n, y.cpu().numpy(), 1)
                np.add.at(per_class_correct, y.cpu().numpy(), hit.cpu().numpy().astype(np.int64))
        per_class = [float(c / m) if m else None for c, m in zip(per_class_correct, per_class_n, strict=True)]
        return total_loss / max(1, n), correct / max(1, n), correct, n, per_class

    # ------------------------------------------------------------------------------------------ optimisation

    def _accumulate(self, batch: Batch, y: torch.Tensor, micro: int) -> tuple[float, int]:
        n = len(y)
        loss_sum, correct = 0.0, 0
        for s in range(0, n, micro):
            mb = tuple(t[s : s + micro] for t in batch)
            my = y[s : s + micro]
            with self.autocast:
                logits = self.head(mb[0] if self.cache_train else self.features(mb))
            loss = F.cross_entropy(logits.float(), my, label_smoothing=self.config.label_smoothing)
            (loss * (len(my) / n)).backward()
            loss_sum += loss.item() * len(my)
            correct += int((logits.argmax(1) == my).sum())
        return loss_sum, correct

    def train_step(self, batch: Batch, y: torch.Tensor) -> tuple[float, int, int]:
        """One optimizer step over the batch, in micro-batches; halves the micro-batch on OOM."""
        optimizer = self.optimizer
        while True:
            optimizer.zero_grad(set_to_none=True)
            oom = False
            try:
                loss_sum, correct = self._accumulate(batch, y, self.st.micro)
            except Exception as e:
                if not is_oom_error(e):
                    raise
                oom = True
            if not oom:
                break
            # Outside the except block the traceback (and the activations its frames hold) is released.
            optimizer.zero_grad(set_to_none=True)
            free_device_memory(self.device)
            if self.st.micro <= 1:
                raise TrainingOutOfMemory(
                    "out of device memory even with a micro-batch of 1",
                    hint="use --unfreeze head or last-1, a smaller model, or --device cpu",
                )
            self.st.micro = max(1, self.st.micro // 2)
            self.emit(
                {
                    "event": "oom",
                    "micro_batch": self.st.micro,
                    "accumulation_steps": math.ceil(self.config.batch_size / self.st.micro),
                }
            )
        if self.config.grad_clip is not None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        optimizer.step()
        self.scheduler.step()
        return loss_sum, correct, len(y)

    # ------------------------------------------------------------------------------------------ state

    def backbone_state(self) -> dict[str, torch.Tensor]:
        sd = self.task.backbone.state_dict()
        return {k: sd[k] for k in self.plan.state_keys}

    def write_state(self) -> None:
        if self.state_path is None:
            return
        st = self.st
        state = {
            "format": STATE_FORMAT,
            "run_key": self.run_key,
            "data_key": self.data_key,
            "config": self.config.training_key(),
            "epoch": st.epoch_done,
            "head": {k: cpu_clone(v) for k, v in self.head.state_dict().items()},
            "backbone": {k: cpu_clone(v) for k, v in self.backbone_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sched": dict(self.sched),
            "rng": rng_state(),
            "history": [h.to_dict() for h in st.history],
            "best": st.best,
            "bad_epochs": st.bad_epochs,
            "micro_batch": st.micro,
            "elapsed_seconds": self.elapsed(),
            "finished": st.finished,
            "notes": st.notes,
        }
        save_state(self.state_path, state)

    def keep_if_best(self, epoch: int, val: tuple[float, float, int, int, list[float | None]]) -> None:
        """Update patience and, on a gain (or an accuracy tie at lower loss), the kept checkpoint."""
        val_loss, val_acc, val_correct, val_n, per_class = val
        st = self.st
        # Patience counts epochs without an accuracy gain; an accuracy tie at lower loss still updates the
        # kept checkpoint, but does not reset patience.
        acc_gain = val_acc > st.best["acc"]
        st.bad_epochs = 0 if acc_gain else st.bad_epochs + 1
        if not (acc_gain or (val_acc == st.best["acc"] and val_loss < st.best["loss"])):
            return
        st.best = {
            "epoch": epoch,
            "acc": val_acc,
            "loss": val_loss,
            "correct": val_correct,
            "n": val_n,
            "per_class": per_class,
        }
        if self.best_path is not None:
            meta = {
                **self.task.meta,
                "epoch": str(epoch),
                "unfreeze": self.config.unfreeze,
                "classes": "\n".join(self.task.classes),
            }
            save_best_checkpoint(self.best_path, self.head, self.backbone_state(), meta)
        else:
            self.best_mem = {"head." + k: cpu_clone(v) for k, v in self.head.state_dict().items()}
            self.best_mem.update({"backbone." + k: cpu_clone(v) for k, v in self.backbone_state().items()})

    # ------------------------------------------------------------------------------------------ epochs

    def _epoch_batches(self, epoch: int) -> Iterable[Any]:
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.task.train.items))
        if self.cache_train:
            return self.cached_train_batches(order)
        return make_loader(
            self.task,
            self.task.train,
            index_batches(len(order), self.config.batch_size, order),
            seed=self.config.seed,
            epoch=epoch,
            augment=self.config.augments,
            workers=self.config.num_workers,
        )

    def run_epoch(self, epoch: int) -> EpochRecord:
        """Train one epoch (step events; the budget may end it early), then validate."""
        st, sched, steps_per_epoch = self.st, self.sched, self.steps_per_epoch
        ep_start = time.perf_counter()
        torch.manual_seed(epoch_seed(self.config.seed, epoch))
        loader = self._epoch_batches(epoch)
        set_train_modes(self.task.backbone, True)
        self.head.train()
        loss_sum, correct, seen, step = 0.0, 0, 0, 0
        partial = False
        for got, bad in loader:
            self.skipped.update(self.task.train.ids[i] for i in bad)
            step += 1
            if got is None:
                self.scheduler.step()  # keep the schedule aligned with the planned step count
                continue
            batch, y, _ = got
            ls, c, n = self.train_step(self.to_dev(batch), y.to(self.device))
            loss_sum, correct, seen = loss_sum + ls, correct + c, seen + n
            per_step = (time.perf_counter() - ep_start) / step
            prev_epochs = [h.seconds for h in st.history if not h.partial]
            est_epoch = (sum(prev_epochs) / len(prev_epochs)) if prev_epochs else per_step * steps_per_epoch
            self.emit(
                {
                    "event": "step",
                    "epoch": epoch,
                    "epochs": sched["epochs"],
                    "step": step,
                    "steps": steps_per_epoch,
                    "loss": loss_sum / max(1, seen),
                    "accuracy": correct / max(1, seen),
                    "eta_seconds": per_step * (steps_per_epoch - step)
                    + est_epoch * (sched["epochs"] - epoch),
                }
            )
            if self.budget_s is not None and self.elapsed() > self.budget_s and step < steps_per_epoch:
                partial = True
                st.notes.append(f"the budget ended epoch {epoch} after {step}/{steps_per_epoch} steps")
                break
        val = self.evaluate()
        rec = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / max(1, seen),
            train_accuracy=correct / max(1, seen),
            val_loss=val[0],
            val_accuracy=val[1],
            val_correct=val[2],
            val_n=val[3],
            lr_head=float(self.optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - ep_start,
            partial=partial,
        )
        self.keep_if_best(epoch, val)
        return rec

    def decide(self, epoch: int, partial: bool) -> StopReason | None:
        """Whether to stop after ``epoch``: budget, patience, epochs done; re-plans the cosine to what fits."""
        st, sched, config = self.st, self.sched, self.config
        if partial:
            return "budget"
        if config.patience > 0 and st.bad_epochs >= config.patience and epoch < sched["epochs"]:
            return "early_stopping"
        if epoch >= sched["epochs"]:
            return "completed"
        if self.budget_s is None:
            return None
        full = [h.seconds for h in st.history if not h.partial]
        per_epoch = sum(full) / len(full)
        fit = epoch + int((self.budget_s - self.elapsed()) // per_epoch)
        if fit <= epoch:
            st.notes.append(
                f"the budget ({config.budget_minutes:g} min) stopped the run after epoch {epoch} "
                f"of {sched['epochs']} (about {per_epoch:.1f} s per epoch)"
            )
            return "budget"
        if fit < sched["epochs"]:
            st.notes.append(
                f"the budget ({config.budget_minutes:g} min) fits {fit} of {sched['epochs']} epochs "
                f"(about {per_epoch:.1f} s per epoch); the schedule was re-planned to {fit}"
            )
            sched["epochs"] = fit
            sched["total"] = fit * self.steps_per_epoch
            self.emit({"event": "replan", "epochs": fit})
        return None

    def loop(self) -> None:
        """Run epochs until one of the stopping rules fires; each epoch ends with a state write."""
        st, sched = self.st, self.sched
        while st.finished is None:
            if st.epoch_done >= sched["epochs"]:
                st.finished = "completed"
                break
            epoch = st.epoch_done + 1
            rec = self.run_epoch(epoch)
            st.history.append(rec)
            st.epoch_done = epoch
            st.finished = self.decide(epoch, rec.partial)
            if st.finished is not None:
                self.emit({"event": "stop", "reason": st.finished, "epoch": epoch})
            self.write_state()
            self.emit(
                {
                    "event": "epoch",
                    "record": rec,
                    "best_epoch": st.best["epoch"],
                    "epochs": sched["epochs"],
                    "eta_seconds": (sum(h.seconds for h in st.history) / len(st.history))
                    * (sched["epochs"] - epoch),
                }
            )

    def outcome(self) -> TrainOutcome:
        """Load the best epoch's weights into the model and head, and collect the outcome."""
        st, best_path = self.st, self.best_path
        head_sd: dict[str, torch.Tensor] | None = None
        bb_sd: dict[str, torch.Tensor] = {}
        if best_path is not None and best_path.exists():
            head_sd, bb_sd, _ = load_best_checkpoint(best_path)
        elif self.best_mem is not None:
            head_sd = {k[5:]: v for k, v in self.best_mem.items() if k.startswith("head.")}
            bb_sd = {k[9:]: v for k, v in self.best_mem.items() if k.startswith("backbone.")}
        if head_sd is not None:
            self.head.load_state_dict(head_sd)
            self.task.backbone.load_state_dict(bb_sd, strict=False)
        set_train_modes(self.task.backbone, False)
        self.head.eval()
        peak, peak_kind = peak_memory(self.device)
        if self.skipped:
            shown = ", ".join(sorted(self.skipped)[:5]) + (", ..." if len(self.skipped) > 5 else "")
            n = len(self.skipped)
            st.notes.append(f"{n} item{'s' if n != 1 else ''} could not be read and were skipped ({shown})")
        return TrainOutcome(
            history=st.history,
            best_epoch=int(st.best["epoch"]),
            best_val_accuracy=float(st.best["acc"]),
            best_val_loss=float(st.best["loss"]),
            best_val_correct=int(st.best["correct"]),
            best_val_n=int(st.best["n"]),
            per_class_accuracy=list(st.best["per_class"]),
            stopped_reason=st.finished or "completed",
            epochs_planned=int(self.sched["epochs"]),
            micro_batch_size=st.micro,
            grad_accum_steps=math.ceil(self.config.batch_size / st.micro),
            plan=self.plan,
            head=self.head,
            resumed_from_epoch=st.resumed_from,
            total_seconds=self.elapsed(),
            peak_memory_mb=peak,
            peak_memory_kind=peak_kind,
            precision=self.precision,
            device=str(self.device),
            checkpoint=best_path if best_path is not None and best_path.exists() else None,
            skipped_items=len(self.skipped),
            notes=st.notes,
        )
