"""What a local graph's source-head output is: raw logits or probabilities (a Softmax already applied)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def onnx_output_kind(path: Path, output: str) -> str | None:
    """ "probabilities" when the ONNX node producing `output` is a Softmax, "logits" otherwise.

    Returns None when the graph cannot be read (the optional `onnx` package is missing); the scores then decide
    from the values (`advisor.scores.prepare.looks_like_probabilities`).
    """
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # optional dependency or unreadable graph: the value rule downstream decides
        return None
    for node in graph.node:
        if output in node.output:
            return "probabilities" if node.op_type == "Softmax" else "logits"
    return "logits"


def tflite_output_kind(interpreter: Any, out: dict) -> str:
    """ "probabilities" when the TFLite output comes from a SOFTMAX op, or (op list unavailable) carries the
    quantization TFLite mandates for softmax outputs: scale 1/256 with zero point 0 (uint8) or -128 (int8)."""
    try:
        for op in interpreter._get_ops_details():
            if out["index"] in list(op.get("outputs", [])):
                return "probabilities" if str(op.get("op_name", "")).upper() == "SOFTMAX" else "logits"
    except Exception:  # private interpreter API; fall back to the quantization rule
        pass
    scale, zp = out.get("quantization", (0.0, 0))
    softmax_q = (out.get("dtype") == np.uint8 and zp == 0) or (out.get("dtype") == np.int8 and zp == -128)
    if scale and abs(float(scale) - 1 / 256) < 1e-9 and softmax_q:
        return "probabilities"
    return "logits"
