"""Operation counts: GMACs (billions of multiply-accumulates per sample) with fvcore, completed where it misses
operators, and cross-checked against torch's own FlopCounterMode run on the meta device.

Two conventions exist and both are reported, because published tables use different ones:
- ``gmacs`` (fvcore + advisor's handles): convolutions, linear/matmul/einsum, attention (added here: fvcore has no
  handle for ``scaled_dot_product_attention``), plus the small normalisation/pooling terms fvcore counts. This is
  the convention of timm's published ``infer_gmacs``.
- ``gmacs_torch`` (``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2): matmul-class operators only. This is
  the convention of torchvision's published ``_ops`` ("GFLOPS" in its docs, which are in fact GMACs).
Operators neither counter handles are listed in ``uncounted_ops`` rather than silently dropped; the ones that can
carry real arithmetic (convolutions, matmuls, attention, recurrent cells) are flagged in ``significant_uncounted``.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Operators whose cost is a matmul/convolution: missing one of these means a real undercount.
_SIGNIFICANT = re.compile(
    r"(conv|matmul|\bmm\b|::mm$|bmm|addmm|linear|einsum|attention|lstm|gru|rnn|_convolution)"
)


@dataclass
class GmacsResult:
    """Operation count of one forward pass, per sample.

    Attributes:
        gmacs: billions of multiply-accumulates per sample (fvcore + advisor handles); ``None`` if not countable.
        method: how ``gmacs`` was counted.
        uncounted_ops: operator -> number of calls that no handle counted (elementwise ops are expected here).
        significant_uncounted: the subset of ``uncounted_ops`` that may hide real arithmetic (undercount!).
        gmacs_torch: FlopCounterMode FLOPs / 2 per sample (matmul-class ops only), ``None`` if it failed.
        torch_method: ``"meta"`` (parameters and inputs on the meta device: no compute) or ``"real"``.
        rel_diff: (gmacs - gmacs_torch) / gmacs_torch; the two conventions differ by the small terms fvcore adds.
        by_operator: GMACs per sample per operator family (fvcore's breakdown).
        batch_size: batch size of the inputs that were counted (figures are divided by it).
        input_shapes: shapes of the counted inputs.
        seconds: wall time of the counting.
        notes: caveats (failures of one counter, added handles used).
    """

    gmacs: float | None
    method: str
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    significant_uncounted: list[str] = field(default_factory=list)
    gmacs_torch: float | None = None
    torch_method: str | None = None
    rel_diff: float | None = None
    by_operator: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    input_shapes: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return "GMACs (1e9 multiply-accumulates) per sample"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["unit"] = self.unit
        return d


def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def sdpa_mac_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: Q·Kᵀ and softmax(·)·V, in MACs.

    For q (..., L, E), k (..., S, E), v (..., S, Ev): L*S*E + L*S*Ev multiply-accumulates per leading index.
    """
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    lead = _prod(q[:-2])
    L, E = q[-2], q[-1]
    S, Ev = k[-2], v[-1]
    return lead * L * S * (E + Ev)


def _mha_native_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::_native_multi_head_attention`` (nn.MultiheadAttention fast path), in MACs.

    Inputs: query (B, L, D), key (B, S, D), value, embed_dim, num_heads, in_proj_weight, in_proj_bias,
    out_proj_weight, ... -> in-projection 3 x D x D, attention 2 x L x S x D, out-projection D x D.
    """
    from fvcore.nn.jit_handles import get_shape

    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    B, L, D = (q[0], q[1], q[2]) if len(q) == 3 else (1, q[0], q[1])
    S = k[-2]
    return B * (L * D * D + 2 * S * D * D + 2 * L * S * D + L * D * D)


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_mac_handle,
    "aten::_native_multi_head_attention": _mha_native_handle,
}


@contextmanager
def _mha_fastpath_disabled():
    """Run nn.MultiheadAttention through its decomposed ops (linear + sdpa), which the counters see."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _batch_size(inputs: tuple[Any, ...]) -> int:
    for x in inputs:
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def count_fvcore(module: Any, inputs: tuple[Any, ...]) -> tuple[float, dict[str, int], dict[str, float]]:
    """Total MACs of ``module(*inputs)`` by fvcore with advisor's extra handles.

    Returns (MACs for the whole batch, uncounted operator -> calls, per-operator MACs).
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # fvcore's import calls the deprecated torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    with torch.no_grad(), _mha_fastpath_disabled(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(module, inputs)
        fca.set_op_handle(**EXTRA_HANDLES)
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        fca.tracer_warnings("none")
        total = float(fca.total())
        uncounted = {str(k): int(v) for k, v in fca.unsupported_ops().items()}
        by_op = {str(k): float(v) for k, v in fca.by_operator().items()}
    return total, uncounted, by_op


def _to_meta(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        return torch.empty_like(x, device="meta")
    if isinstance(x, (tuple, list)):
        return type(x)(_to_meta(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_meta(v) for k, v in x.items()}
    return x


@contextmanager
def _on_meta(module: Any):
    """Temporarily swap every parameter and buffer of ``module`` for a meta tensor of the same shape, in place.

    Each submodule's own ``_parameters``/``_buffers`` entries are swapped and the original objects put back
    afterwards, so shared submodules (a head also reachable inside a backbone) and tied weights survive intact.
    (``torch.func.functional_call`` does not restore tied weights reliably.)
    """
    import torch

    saved: list[tuple[dict, str, Any]] = []
    memo: dict[int, Any] = {}
    try:
        for m in module.modules():
            for store, make in (
                (m._parameters, lambda t: torch.nn.Parameter(t, requires_grad=False)),
                (m._buffers, lambda t: t),
            ):
                for name, t in list(store.items()):
                    if t is None:
                        continue
                    saved.append((store, name, t))
                    if id(t) not in memo:
                        memo[id(t)] = make(torch.empty_like(t, device="meta"))
                    store[name] = memo[id(t)]
        yield module
    finally:
        for store, name, t in reversed(saved):
            store[name] = t


def count_torch_flops(module: Any, inputs: tuple[Any, ...], *, meta: bool = True) -> tuple[float, str]:
    """FLOPs of ``module(*inputs)`` by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-accumulate).

    With ``meta=True`` the parameters, buffers and inputs are swapped for meta tensors through
    `_on_meta`: shapes propagate, nothing is computed or allocated. If the model does not run
    on meta (data-dependent control flow), it falls back to one real forward. Returns (FLOPs, "meta"|"real").
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with _mha_fastpath_disabled():
        if meta:
            try:
                with _on_meta(module), FlopCounterMode(display=False) as fc, torch.no_grad():
                    module(*(_to_meta(x) for x in inputs))
                return float(fc.get_total_flops()), "meta"
            except Exception:  # noqa: BLE001 - some models need real data (e.g. .item() on a tensor)
                pass
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            module(*inputs)
        return float(fc.get_total_flops()), "real"


def count_gmacs(module: Any, inputs: tuple[Any, ...], *, cross_check: bool = True) -> GmacsResult:
    """GMACs per sample of ``module(*inputs)`` (fvcore + attention handles), cross-checked with FlopCounterMode.

    Count with a batch of 1 at the model's native input size to compare with published tables. Neither counter
    failing is fatal: the result says which worked, and lists operators that no handle counted.

    Args:
        module: a torch module in eval mode.
        inputs: the positional inputs of one forward pass.
        cross_check: also count with torch's FlopCounterMode on the meta device.
    """
    t0 = time.perf_counter()
    bs = _batch_size(inputs)
    shapes = [list(getattr(x, "shape", [])) for x in inputs]
    res = GmacsResult(gmacs=None, method="none", batch_size=bs, input_shapes=shapes)
    try:
        total, uncounted, by_op = count_fvcore(module, inputs)
        res.gmacs = total / bs / 1e9
        res.method = "fvcore FlopCountAnalysis (1 per MAC) + advisor handles for scaled_dot_product_attention"
        res.uncounted_ops = dict(sorted(uncounted.items()))
        res.by_operator = {k: v / bs / 1e9 for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
    except Exception as e:  # noqa: BLE001 - e.g. a model jit.trace cannot follow
        res.notes.append(f"fvcore could not trace the model ({type(e).__name__}: {str(e)[:160]})")
    if cross_check or res.gmacs is None:
        try:
            flops, how = count_torch_flops(module, inputs)
            res.gmacs_torch = flops / 2.0 / bs / 1e9
            res.torch_method = how
        except Exception as e:  # noqa: BLE001
            res.notes.append(f"FlopCounterMode failed ({type(e).__name__}: {str(e)[:160]})")
    if res.gmacs is None and res.gmacs_torch is not None:
        res.gmacs = res.gmacs_torch
        res.method = "torch FlopCounterMode FLOPs / 2 (fvcore failed)"
    if res.gmacs is not None and res.gmacs_torch:
        res.rel_diff = (res.gmacs - res.gmacs_torch) / res.gmacs_torch
    res.significant_uncounted = [op for op in res.uncounted_ops if _SIGNIFICANT.search(op)]
    if res.significant_uncounted:
        res.notes.append(
            "undercount: no handle for " + ", ".join(res.significant_uncounted) + "; GMACs are a lower bound"
        )
    res.seconds = time.perf_counter() - t0
    return res


def within(
    measured: float | None, published: float | None, rel_tol: float, decimals: int | None = None
) -> bool:
    """True when ``measured`` matches ``published`` within ``rel_tol``, or rounds to it at ``decimals`` places."""
    if measured is None or published is None or published == 0:
        return False
    if abs(measured - published) / abs(published) <= rel_tol:
        return True
    return decimals is not None and math.isclose(
        round(measured, decimals), published, abs_tol=10**-decimals / 2
    )


__all__ = ["GmacsResult", "count_gmacs", "count_fvcore", "count_torch_flops", "sdpa_mac_handle", "within"]
