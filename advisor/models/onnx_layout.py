"""What an ONNX graph's input signature says it takes: image (NCHW/NHWC), waveform audio or token ids.

The modality of a local ONNX file comes from here when neither the id nor the sidecar names one, and a modality
that is named is checked against it, so a graph is never fed a batch of the wrong shape (which onnxruntime answers
with a raw ``INVALID_ARGUMENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from advisor.errors import ModelLoadError

Modality = Literal["image", "text", "audio"]
Dim = int | str | None

_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)")
_INT_TYPES = ("tensor(int64)", "tensor(int32)")
INT16_SCALE = 32767.0


@dataclass(frozen=True)
class OnnxInput:
    """One graph input as onnxruntime reports it: ``shape`` holds ints for fixed axes, names/None otherwise."""

    name: str
    shape: tuple[Dim, ...]
    type: str


@dataclass(frozen=True)
class OnnxLayout:
    """How to feed a graph.

    Attributes:
        modality: what the input signature takes.
        layout: ``NCHW`` | ``NHWC`` (images), ``waveform`` ``(N, samples)`` | ``channel-waveform``
            ``(N, 1, samples)`` (audio), ``tokens`` (text).
        batch: the fixed batch size of the first input, None when the batch axis is dynamic.
        side: the fixed image side (pixels) when the graph fixes it, else None.
        samples: the fixed waveform length when the graph fixes it, else None.
        int16: the waveform input is int16 (samples are scaled to the int16 range and rounded).
    """

    modality: Modality
    layout: str
    batch: int | None = None
    side: int | None = None
    samples: int | None = None
    int16: bool = False


def input_specs(session: Any) -> list[OnnxInput]:
    """The inputs of an onnxruntime session as `OnnxInput` records."""
    return [OnnxInput(i.name, tuple(i.shape or ()), str(i.type)) for i in session.get_inputs()]


def describe(inp: OnnxInput) -> str:
    """``input_1 [batch, 76, 32, 1] float`` for messages."""
    dims = ", ".join(str(d) if d is not None else "?" for d in inp.shape)
    kind = inp.type.removeprefix("tensor(").removesuffix(")")
    return f"{inp.name!r} [{dims}] {kind}"


def _fixed(d: Dim) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _unsupported(path: Path, inp: OnnxInput, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: the graph's input {describe(inp)} {why}",
        hint="advisor feeds images [N, 3, H, W] or [N, H, W, 3], waveforms [N, samples] and token ids "
        "[N, tokens]; export the graph with one of these inputs (e.g. the front end and the model as one graph)",
    )


def infer_layout(path: Path, inputs: list[OnnxInput]) -> OnnxLayout:
    """Read the modality and layout from a graph's inputs.

    Token ids: an int64/int32 rank-2 input (``input_ids`` when named so). Image: a float rank-4 input with 3
    channels first (NCHW) or last (NHWC); a rank-4 input with a dynamic channel axis (and not 3 last) is taken as NCHW.
    Audio: a float or int16 rank-2 input ``[N, samples]``, or rank 3 ``[N, 1, samples]``.

    Raises:
        ModelLoadError: the graph has no inputs, or the first input fits none of these (the message names the file
            and the input's shape and type).
    """
    if not inputs:
        raise ModelLoadError(
            f"{path}: the graph has no inputs", hint="check the file is a complete ONNX model"
        )
    ids = [i for i in inputs if i.type in _INT_TYPES and len(i.shape) == 2]
    if ids:
        first = next((i for i in ids if i.name == "input_ids"), ids[0])
        return OnnxLayout("text", "tokens", batch=_fixed(first.shape[0]))
    inp = inputs[0]
    rank, batch = len(inp.shape), _fixed(inp.shape[0]) if inp.shape else None
    if inp.type == "tensor(int16)" and rank == 2:
        return OnnxLayout("audio", "waveform", batch=batch, samples=_fixed(inp.shape[1]), int16=True)
    if inp.type not in _FLOAT_TYPES:
        raise _unsupported(path, inp, "is not a float tensor, int16 audio or int64 token ids")
    if rank == 2:
        return OnnxLayout("audio", "waveform", batch=batch, samples=_fixed(inp.shape[1]))
    if rank == 3 and inp.shape[1] == 1:
        return OnnxLayout("audio", "channel-waveform", batch=batch, samples=_fixed(inp.shape[2]))
    if rank == 4:
        c_first, c_last = inp.shape[1], inp.shape[3]
        if c_first == 3 or (c_last != 3 and _fixed(c_first) is None):
            h, w = inp.shape[2], inp.shape[3]
            layout = "NCHW"
        elif c_last == 3:
            h, w = inp.shape[1], inp.shape[2]
            layout = "NHWC"
        else:
            raise _unsupported(path, inp, "is not a 3-channel image (NCHW or NHWC) nor a waveform")
        fh, fw = _fixed(h), _fixed(w)
        if fh != fw and fh is not None and fw is not None:
            raise _unsupported(
                path, inp, f"takes non-square images ({fh}x{fw}), which advisor does not resize to"
            )
        return OnnxLayout("image", layout, batch=batch, side=fh or fw)
    raise _unsupported(path, inp, f"has rank {rank}, which is not an image, waveform or token-id input")


def check_modality(path: Path, given: str | None, layout: OnnxLayout, inp: OnnxInput) -> Modality:
    """The modality to use: the one the input signature takes; a different one named in the id/sidecar is refused.

    Raises:
        ModelLoadError: ``modality`` was given and the graph's input takes another kind of data.
    """
    if given is None or given == layout.modality:
        return layout.modality
    raise ModelLoadError(
        f"{path}: modality={given} was asked for (in the id or the sidecar JSON), but the graph's input "
        f"{describe(inp)} takes {layout.modality} ({layout.layout})",
        hint=f"drop modality= (it is read from the graph), or export a graph that takes {given} input",
    )
