"""Models loaded once per run: the features stage's model, on its runtime, reused by the bench stage.

`reuse_models()` opens a pool for the length of a run (`advisor.recommend.run` opens one); outside a pool,
`load_on_runtime` loads every time, as before. A pooled entry is the model as loaded (the *source*: its torch module
is what weights and GMACs are counted on) and the model on the chosen runtime (the *derived* one, which may be the
same object), with the `RuntimeChoice` that picked it.

The pool holds at most ``budget_mb`` of weights (``ADVISOR_MODEL_POOL_MB``, default 2048); the least recently used
entry goes first, and a model larger than the budget is never kept. It is thread-safe (the thread executor extracts
features side by side). Fine-tuning never takes a model from it: training changes the weights.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.models.base import LoadedModel
    from advisor.models.runtimes import RuntimeChoice

DEFAULT_BUDGET_MB = 2048.0


@dataclass(frozen=True)
class Pooled:
    """One loaded model: ``source`` as loaded, ``model`` on its runtime (``choice`` None for eager)."""

    source: LoadedModel
    model: LoadedModel
    choice: RuntimeChoice | None
    size_mb: float


PoolKey = tuple[str, str, bool, str]  # model id, device, pretrained, runtime asked for


class ModelPool:
    """A bounded, thread-safe map from (model id, device, pretrained, runtime) to a `Pooled` model."""

    def __init__(self, budget_mb: float = DEFAULT_BUDGET_MB) -> None:
        self.budget_mb = float(budget_mb)
        self._items: OrderedDict[PoolKey, Pooled] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: PoolKey) -> Pooled | None:
        with self._lock:
            got = self._items.get(key)
            if got is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return got

    def find(self, model_id: str, device: str, runtime: str) -> Pooled | None:
        """The entry for `model_id` on `device` and `runtime`, whatever its weights (timing does not depend on
        their values): the pretrained one first."""
        return self.get((model_id, device, True, runtime)) or self.get((model_id, device, False, runtime))

    def put(self, key: PoolKey, item: Pooled) -> None:
        if item.size_mb > self.budget_mb:
            return
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while sum(p.size_mb for p in self._items.values()) > self.budget_mb:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


_active: ModelPool | None = None
_active_lock = threading.Lock()


def active_pool() -> ModelPool | None:
    """The pool of the run in progress (None outside `reuse_models`)."""
    return _active


@contextmanager
def reuse_models(budget_mb: float | None = None) -> Iterator[ModelPool]:
    """Open a model pool for the block (a nested call shares the outer one); it is emptied when the block ends."""
    global _active
    with _active_lock:
        outer = _active
        pool = outer if outer is not None else ModelPool(_budget_mb() if budget_mb is None else budget_mb)
        _active = pool
    try:
        yield pool
    finally:
        if outer is None:
            with _active_lock:
                _active = None


def _budget_mb() -> float:
    raw = os.environ.get("ADVISOR_MODEL_POOL_MB")
    try:
        return float(raw) if raw else DEFAULT_BUDGET_MB
    except ValueError:
        return DEFAULT_BUDGET_MB


def size_mb(lm: Any) -> float:
    """Bytes of the parameters and buffers of `lm`'s torch modules (features and head), in MiB (0: none)."""
    total = 0
    for module in (getattr(lm, "module", None), getattr(lm, "head", None)):
        if module is not None and hasattr(module, "parameters"):
            total += sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return total / 2**20


def load_on_runtime(
    model_id: str,
    *,
    device: str,
    pretrained: bool,
    runtime: str,
    check: Callable[[LoadedModel], None] | None = None,
    **load_options: Any,
) -> Pooled:
    """`model_id` loaded (`advisor.models.load_model`) and put on `runtime` (`with_runtime`), from the active pool
    when it holds it; a fresh load goes into the pool.

    ``load_options`` (``offline``, ``trust_remote_code``) go to `load_model`; they are the same for a whole run, so
    they are not part of the pool's key. ``check`` sees every model before it is used (a pooled one too) and may
    raise: it runs before the runtime trial, so a model that cannot serve costs no trial.
    """
    pool = active_pool()
    key: PoolKey = (model_id, str(device), bool(pretrained), runtime)
    if pool is not None and (hit := pool.get(key)) is not None:
        if check is not None:
            check(hit.source)
        return hit
    from advisor.models import load_model

    source = load_model(model_id, device=str(device), pretrained=pretrained, **load_options)
    if check is not None:
        check(source)
    model, choice = source, None
    if runtime != "eager":
        from advisor.models.runtimes import with_runtime

        model, choice = with_runtime(source, runtime)
    item = Pooled(source, model, choice, size_mb(source))
    if pool is not None:
        pool.put(key, item)
    return item
