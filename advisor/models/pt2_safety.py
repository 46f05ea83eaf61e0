"""Inspection of ``.pt2`` (torch.export) archives before loading: refuse pickled payloads and native code."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from advisor.errors import ModelLoadError

# ------------------------------------------------------------------------------------------------ pt2 safety
# torch.export.load unpickles parts of an archive: weights/constants flagged ``use_pickle`` go through
# ``torch.load(weights_only=False)``, opaque constants through ``pickle.loads``, and torch.save blobs (sample
# inputs, legacy weight files) fall back to ``weights_only=False`` when the safe load fails. AOTInductor members
# are native libraries that get dlopen-ed. Any of these runs code from the file, so the archive is inspected first.
TRUST_PICKLE_ENV = "ADVISOR_TRUST_PICKLE"
_PICKLE_SUFFIXES = (".pkl", ".pickle")
_NATIVE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia/")


def _trust_pickle(params: dict[str, str]) -> bool:
    """True when the user asked to load pickled payloads: ``?trust_pickle=1`` in the id or ADVISOR_TRUST_PICKLE=1.

    Never read from a sidecar JSON: a sidecar travels with the (possibly hostile) model file.
    """
    vals = (params.get("trust_pickle"), os.environ.get(TRUST_PICKLE_ENV))
    return any(str(v).strip().lower() in ("1", "true", "yes") for v in vals if v is not None)


def _safe_torch_blob(blob: bytes) -> bool:
    """Whether a torch.save blob loads with ``weights_only=True`` (torch's restricted, code-free unpickler)."""
    import io
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unsupported protocol" noise for blobs that are refused anyway
            torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def _looks_pickled(blob: bytes) -> bool:
    """A raw pickle stream (protocol 2+ header) or a torch.save zip (which holds a ``data.pkl``)."""
    return (len(blob) > 1 and blob[0] == 0x80 and 2 <= blob[1] <= 5) or blob[:4] == b"PK\x03\x04"


def pt2_pickle_findings(data: bytes) -> list[str]:
    """What in a ``.pt2`` archive would be unpickled (or run as native code) by ``torch.export.load``.

    Args:
        data: the archive's bytes.

    Returns:
        Short descriptions of the offending members; empty when the archive holds only JSON, raw tensor bytes
        and torch.save blobs that load with ``weights_only=True``.

    Raises:
        ModelLoadError: the bytes are not a zip archive.
    """
    import io
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ModelLoadError("not a torch.export archive (not a zip file)") from e
    names = zf.namelist()
    # New archives keep everything under one root folder (the file's stem); 2.7-era ones are flat.
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    root = next(iter(roots)) + "/" if len(roots) == 1 and all("/" in n for n in names) else ""
    findings: list[str] = []
    raw: set[str] = set()  # members the configs already account for (raw tensor bytes, or reported above)
    for n in names:
        rel = n[len(root) :]
        if not (rel.endswith("_config.json") and rel.startswith(("data/weights/", "data/constants/"))):
            continue
        try:
            cfg = json.loads(zf.read(n).decode("utf-8")).get("config", {})
        except (ValueError, UnicodeDecodeError, AttributeError):
            findings.append(f"{rel} is not valid JSON")
            continue
        folder = rel.rsplit("/", 1)[0] + "/"
        for fqn, meta in cfg.items() if isinstance(cfg, dict) else []:
            meta = meta if isinstance(meta, dict) else {}
            pname = str(meta.get("path_name", ""))
            if meta.get("use_pickle") or pname.startswith(("custom_obj", "opaque_obj")):
                findings.append(f"pickled {folder.split('/')[1].rstrip('s')} {fqn!r} ({folder}{pname})")
                raw.add(folder + pname)  # reported once, here
            elif pname:
                raw.add(folder + pname)
    for n in names:
        rel = n[len(root) :]
        if rel.startswith("models/") and rel.endswith(".json") or rel == "serialized_exported_program.json":
            try:
                findings += _graph_findings(rel, json.loads(zf.read(n).decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                findings.append(f"{rel} is not valid JSON")
            continue
        if n.endswith("/") or rel in raw or rel.endswith(".json"):
            continue
        if rel.startswith(_NATIVE_DIRS):
            findings.append(f"compiled native code ({rel})")
        elif rel.lower().endswith(_PICKLE_SUFFIXES):
            findings.append(f"pickle member {rel}")
        else:
            blob = zf.read(n)
            if _looks_pickled(blob) and not _safe_torch_blob(blob):
                findings.append(f"{rel} needs a full unpickle")
    return findings


# Besides pickles, the graph JSON reaches code: sympy.sympify (an eval) of every expression string, ``exec`` of
# ``guards_code`` when the module is built, and call targets looked up by attribute walk from ``torch`` (where
# ``torch.os.system`` resolves). Each is held to the grammar torch.export itself writes.
_SYMPY_NAMES = frozenset(
    (
        "Symbol Integer Rational Float Mul Add Pow Max Min Abs Mod Eq Ne Lt Le Gt Ge StrictLessThan StrictGreaterThan "
        "LessThan GreaterThan Equality Unequality And Or Not Piecewise ExprCondPair true false True False None oo nan "
        "zoo Infinity NegativeInfinity Half One Zero NegativeOne sqrt floor ceiling FloorDiv ModularIndexing Where "
        "PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift IsNonOverlappingAndDenseIndicator TruncToFloat "
        "TruncToInt RoundToInt RoundDecimal ToFloat FloatPow PowByNatural FloatTrueDiv IntTrueDiv IsNonOverlapping "
        "BitwiseFn_bitwise_and BitwiseFn_bitwise_or OpaqueUnaryFn_sqrt OpaqueUnaryFn_log2 Identity "
        "positive negative integer nonnegative nonpositive real finite infinite zero nonzero even odd prime commutative"
    ).split()
)
_SYMPY_TOKEN = re.compile(
    r"\s+|'[A-Za-z_][A-Za-z0-9_]*'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*/%(),=<>!&|~^]"
)
_GUARD_TOKEN = re.compile(
    r"\s+|L\['[A-Za-z_][A-Za-z0-9_]*'\]|\.(?:size|stride|storage_offset|dim)\(\)|\[\d+\]|\d+|"
    r"\b(?:and|or|not|True|False)\b|==|!=|<=|>=|//|[-+*%<>()]"
)
_BAD_OPERATOR = frozenset({"attrgetter", "itemgetter", "methodcaller", "call"})


def _grammar_ok(text: str, token: re.Pattern[str], names: frozenset[str] | None) -> bool:
    pos = 0
    while pos < len(text):
        m = token.match(text, pos)
        if m is None:
            return False
        tok = m.group(0)
        if names is not None and (tok[0].isalpha() or tok[0] == "_") and tok not in names:
            if not re.fullmatch(r"[a-z]{1,4}\d+", tok):  # a bare symbol name such as s77 or u0
                return False
        pos = m.end()
    return True


def _target_ok(target: str) -> bool:
    parts = target.split(".")
    if target.startswith("#") or (parts[0] == "torch" and len(parts) > 2 and parts[1] == "ops"):
        return not any(p.startswith("__") for p in parts)
    if parts[0] in ("_operator", "math") and len(parts) == 2:
        return not parts[1].startswith("_") and parts[1] not in _BAD_OPERATOR
    return parts[0] == "torch" and len(parts) == 2 and parts[1].lstrip("_").startswith("sym_")


def _graph_findings(rel: str, doc: Any) -> list[str]:
    """Expression strings, guard code and call targets in a graph JSON that fall outside torch.export's grammar."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "expr_str" and isinstance(v, str) and not _grammar_ok(v, _SYMPY_TOKEN, _SYMPY_NAMES):
                    found.append(f"an expression that would be evaluated ({rel}: {v[:60]!r})")
                elif k == "target" and isinstance(v, str) and not _target_ok(v):
                    found.append(f"a call to {v[:60]!r} ({rel})")
                elif k == "guards_code" and isinstance(v, list):
                    for g in v:
                        if not (isinstance(g, str) and _grammar_ok(g, _GUARD_TOKEN, None)):
                            found.append(f"guard code that would be executed ({rel}: {str(g)[:60]!r})")
                elif k == "range_constraints" and isinstance(v, dict):
                    for key in v:
                        if not _grammar_ok(str(key), _SYMPY_TOKEN, _SYMPY_NAMES):
                            found.append(f"an expression that would be evaluated ({rel}: {str(key)[:60]!r})")
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return found


def _load_pt2(path: Path, params: dict[str, str]) -> Any:
    """``torch.export.load`` of an archive that was inspected first (see `pt2_pickle_findings`).

    The bytes are read once and the same bytes are checked and loaded, so the file cannot change in between.
    """
    import io

    import torch

    data = path.read_bytes()
    try:
        findings = pt2_pickle_findings(data)
    except ModelLoadError as e:
        raise ModelLoadError(f"{path}: {e.message}", hint="save it with torch.export.save") from e
    if findings and not _trust_pickle(params):
        more = f" and {len(findings) - 2} more" if len(findings) > 2 else ""
        raise ModelLoadError(
            f"{path}: refused: the archive holds payloads that would run code when loaded "
            f"({'; '.join(findings[:2])}{more})",
            hint="re-export it from plain tensors with torch.export.save, or convert it to ONNX; only for a file "
            f"you made yourself, add ?trust_pickle=1 to the id or set {TRUST_PICKLE_ENV}=1",
        )
    return torch.export.load(io.BytesIO(data))
