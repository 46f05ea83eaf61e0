"""The extraction engine: decode samples, run the model's preprocessing in DataLoader workers, forward in batches
under ``torch.inference_mode`` (autocast on GPU, OOM back-off), and write finished chunks as they complete."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import AdvisorError, DatasetError, ModelLoadError
from advisor.features.featureset import FeatureSet
from advisor.features.store import chunk_path, write_chunk
from advisor.progress import ProgressBar, progress_bar
from advisor.runtime import autocast, num_threads, run_with_oom_backoff

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from advisor.data import Sample
    from advisor.models import LoadedModel


class _Items:
    """Map-style dataset over (position, sample): decodes one sample into a raw item, or a skip record."""

    def __init__(
        self,
        samples: Sequence[Sample],
        positions: Sequence[int],
        modality: str,
        sample_rate: int | None,
        min_side: int | None = None,
        max_seconds: float | None = None,
    ):
        self.samples = samples
        self.positions = list(positions)
        self.modality = modality
        self.sample_rate = sample_rate or 16000
        self.min_side = min_side  # images: reduced as they decode (a batch never holds full-size decodes)
        self.max_seconds = max_seconds  # audio: only the first max_seconds are decoded

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        from advisor.data import SkipItem, load_audio, load_image

        pos = self.positions[i]
        s = self.samples[pos]
        try:
            if self.modality == "image":
                return pos, load_image(s, min_side=self.min_side), None
            if self.modality == "audio":
                return pos, load_audio(s, self.sample_rate, max_seconds=self.max_seconds), None
            if s.text is None:
                return pos, None, "sample has no text"
            return pos, s.text, None
        except SkipItem as e:
            return pos, None, e.reason


class _Collate:
    """Runs the model's preprocessing on the decoded items of one batch (inside DataLoader workers)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def __call__(self, rows: list) -> tuple[list[int], tuple | None, list[tuple[int, str]]]:
        ok = [(p, x) for p, x, err in rows if err is None]
        skipped = [(p, err) for p, _, err in rows if err is not None]
        if not ok:
            return [], None, skipped
        try:
            batch = self.model.preprocess([x for _, x in ok])
        except Exception:
            # One bad item must not sink the batch: preprocess one by one, skip the ones that fail.
            good, parts = [], []
            for p, x in ok:
                try:
                    parts.append(self.model.preprocess([x]))
                    good.append((p, x))
                except Exception as e:  # noqa: BLE001 - reported per item
                    skipped.append((p, f"preprocessing failed: {type(e).__name__}: {e}"[:300]))
            if not good:
                return [], None, skipped
            batch = self.model.preprocess([x for _, x in good])
            ok = good
        return [p for p, _ in ok], batch, skipped


def forward_with_oom_retry(model: LoadedModel, batch: tuple, precision: str, state: dict) -> tuple[Any, Any]:
    """Run `model.forward` on `batch` (split into sub-batches of ``state['max_batch']``), halving on OOM.

    Returns:
        (features ndarray, logits ndarray or None).

    Raises:
        AdvisorError: out of memory even at batch size 1.
    """
    import torch

    n = int(batch[0].shape[0])
    step = min(n, state.get("max_batch") or n)
    feats: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    i = 0

    def run(bs: int) -> Any:
        sub = tuple(
            t[i : i + bs] if isinstance(t, torch.Tensor) and t.shape[:1] == (n,) else t for t in batch
        )
        with torch.inference_mode(), autocast(model.device, precision, on_cpu=False):
            out = model.forward(sub)
        return out.features.float().cpu().numpy(), (
            out.logits.float().cpu().numpy() if out.logits is not None else None
        )

    while i < n:
        bo = run_with_oom_backoff(run, step, device=model.device)
        if bo.oom_batches:
            state["oom_retries"] = state.get("oom_retries", 0) + len(bo.oom_batches)
        if bo.batch_size is None:
            raise AdvisorError(
                f"{model.model_id}: out of memory even at batch size 1 on {model.device}",
                hint="use a smaller model or --device cpu",
            )
        if bo.batch_size != step:
            step = state["max_batch"] = bo.batch_size
        f, lg = bo.result
        feats.append(f)
        if lg is not None:
            logits.append(lg)
        i += step
    return np.concatenate(feats), (np.concatenate(logits) if logits else None)


def compute(
    lm: LoadedModel,
    samples: Sequence[Sample],
    positions: list[int],
    entry: Path,
    done: dict[int, dict],
    *,
    chunk_size: int,
    batch_size: int,
    num_workers: int,
    precision: str,
    progress: bool,
    state: dict,
) -> None:
    """Encode the samples at ``positions``; each chunk of ``chunk_size`` positions is written to ``entry`` (and
    added to ``done``) as soon as all its samples are in, so a killed run loses at most the chunks in flight.

    ``state`` collects ``max_batch`` (after OOM back-off), ``oom_retries`` and ``cpu_threads``.
    """
    import torch
    from torch.utils.data import DataLoader

    from advisor.data.media import decode_min_side

    items: Any = _Items(  # a map-style dataset (duck-typed for DataLoader)
        samples,
        positions,
        lm.modality,
        lm.sample_rate,
        min_side=decode_min_side(lm.input_size) if lm.modality == "image" else None,
        max_seconds=state.get("audio_max_seconds"),
    )
    kw: dict[str, Any] = {}
    if num_workers > 0:
        kw = {"persistent_workers": False, "prefetch_factor": 2}
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    loader: Any = DataLoader(
        items,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_Collate(lm),
        pin_memory=lm.device.type == "cuda",
        **kw,
    )
    chunks = _Chunks(entry, done, len(samples), chunk_size)
    bar = progress_bar(len(positions), lm.model_id, enabled=progress)
    hint = lm.info.get("cpu_threads")
    # e.g. RNNs run fastest single-threaded (see the model's info)
    want = min(int(hint), torch.get_num_threads()) if hint and lm.device.type == "cpu" else None
    try:
        with num_threads(want) as n_threads:
            state["cpu_threads"] = n_threads
            _drain(loader, lm, chunks, precision, state, bar)
    finally:
        bar.close()


def _drain(
    loader: Any, lm: LoadedModel, chunks: _Chunks, precision: str, state: dict, bar: ProgressBar
) -> None:
    """Run the model over the loader's batches, handing each row (or skip) to the chunk buffers."""
    for pos_ok, batch, skipped in loader:
        dim = lm.feature_dim
        if batch is not None:
            feats, logits = forward_with_oom_retry(lm, batch, precision, state)
            dim = int(feats.shape[1])
            for j, p in enumerate(pos_ok):
                chunks.add(p, feats[j], None if logits is None else logits[j])
        for p, reason in skipped:
            chunks.skip(p, reason)
        bar.advance(len(pos_ok) + len(skipped))
        chunks.flush(dim)


class _Chunks:
    """Rows of the chunks in progress, by chunk index; `flush` writes the complete ones."""

    def __init__(self, entry: Path, done: dict[int, dict], n: int, chunk_size: int) -> None:
        self.entry, self.done, self.n, self.size = entry, done, n, chunk_size
        self.pending: dict[int, dict[str, list]] = {}

    def _buf(self, position: int) -> dict[str, list]:
        empty: dict[str, list] = {"pos": [], "feats": [], "logits": [], "skipped": []}
        return self.pending.setdefault(position // self.size, empty)

    def add(self, position: int, feats: np.ndarray, logits: np.ndarray | None) -> None:
        buf = self._buf(position)
        buf["pos"].append(position)
        buf["feats"].append(feats)
        if logits is not None:
            buf["logits"].append(logits)

    def skip(self, position: int, reason: str) -> None:
        self._buf(position)["skipped"].append([position, reason])

    def flush(self, dim: int) -> None:
        """Write (atomically) and move to ``done`` every chunk whose samples have all been seen."""
        for c in sorted(self.pending):
            buf = self.pending[c]
            size = min(self.n, (c + 1) * self.size) - c * self.size
            if len(buf["pos"]) + len(buf["skipped"]) != size:
                continue
            f = np.stack(buf["feats"]).astype(np.float32) if buf["feats"] else np.zeros((0, dim), np.float32)
            lg = np.stack(buf["logits"]).astype(np.float32) if buf["logits"] else None
            pos_arr = np.asarray(buf["pos"], dtype=np.int64)
            write_chunk(chunk_path(self.entry, c), pos_arr, f, lg, buf["skipped"])
            self.done[c] = {"pos": pos_arr, "features": f, "logits": lg, "skipped": buf["skipped"]}
            del self.pending[c]


def assemble(
    dataset: Any, samples: Sequence[Sample], lm: LoadedModel, done: dict[int, dict], n_chunks: int
) -> FeatureSet:
    """One FeatureSet, rows in sample order, from the finished chunks (skipped samples listed in ``meta``).

    Raises:
        DatasetError: no sample could be decoded. ModelLoadError: cached chunks disagree on having logits.
    """
    pos: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    skipped: list = []
    has_logits = any(done[c]["logits"] is not None and len(done[c]["pos"]) for c in done)
    for c in range(n_chunks):
        ch = done[c]
        if len(ch["pos"]):
            pos.append(ch["pos"])
            feats.append(ch["features"])
            if has_logits:
                if ch["logits"] is None:
                    raise ModelLoadError(
                        f"{lm.model_id}: cached chunks disagree on logits; rerun with --overwrite-strategy always"
                    )
                logits.append(ch["logits"])
        skipped.extend(ch["skipped"])
    if not pos:
        raise DatasetError(
            f"none of the {len(samples)} samples of {dataset.root} could be decoded for {lm.model_id}",
            hint="check the files (advisor data profile)",
        )
    pos_arr = np.concatenate(pos)
    order = np.argsort(pos_arr, kind="stable")
    pos_arr = pos_arr[order]
    kept = [samples[int(p)] for p in pos_arr]
    skipped.sort()
    return FeatureSet(
        model_id=lm.model_id,
        features=np.concatenate(feats)[order].astype(np.float32, copy=False),
        labels=dataset.labels_array(kept),
        ids=[s.id for s in kept],
        classes=list(dataset.classes),
        logits=np.concatenate(logits)[order] if has_logits else None,
        meta={
            "model_id": lm.model_id,
            "n": len(kept),
            "dim": int(feats[0].shape[1]),
            "skipped": len(skipped),
            "skipped_items": [{"id": samples[int(p)].id, "reason": r} for p, r in skipped],
            "source_classes": lm.source_classes if has_logits else None,
            "logits_kind": (lm.info or {}).get("logits_kind") if has_logits else None,
        },
    )
