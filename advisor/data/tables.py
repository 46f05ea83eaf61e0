"""Reading tables (CSV, TSV, JSONL, JSON records) robustly: encodings, delimiters, bad rows, column choice."""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from advisor.data.types import SkippedItem
from advisor.errors import DatasetError

TEXT_COLUMNS = ("text", "sentence", "utterance", "content", "review", "query", "question", "document", "body")
LABEL_COLUMNS = ("label", "category", "intent", "class", "target", "labels", "class_name", "y")
PATH_COLUMNS = (
    "path", "filepath", "file_path", "file", "filename", "file_name", "image", "image_path", "img", "audio",
    "audio_path", "audio_file", "image_file",
)  # fmt: skip
SPLIT_COLUMNS = ("split", "subset", "fold_name")

logger = logging.getLogger(__name__)
# Long documents in one cell are fine (the csv module's default cap is 128 KiB per field).
csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))


@dataclass
class Table:
    """Rows of a table file as dicts of strings, with the rows that could not be used."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str | None]]]  # (0-based data row number, row); None: a JSON null/NaN
    skipped: list[SkippedItem] = field(default_factory=list)
    encoding: str = "utf-8"


def _legacy_bytes(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: bytes that are not UTF-8 decoded as Windows-1252 (Latin-1 for its 5 unassigned
    bytes), the legacy encoding of nearly every non-UTF-8 table in the wild (Excel on Windows, older exports)."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad), err.end


codecs.register_error("advisor-cp1252", _legacy_bytes)


def _decode(path: Path, data: bytes, *, warn: bool = True) -> tuple[str, str]:
    """Decode bytes: UTF-16/32 by BOM, else UTF-8 (with or without BOM).

    Bytes that are not UTF-8 (a Latin-1/Windows-1252 file, or such rows pasted into a UTF-8 file) are decoded
    as Windows-1252, the rest stays UTF-8; the encoding returned says so (``"windows-1252"``, or
    ``"utf-8, with N of M lines in windows-1252: line ..."``), and with `warn` one warning says it too."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as e:
            raise DatasetError(
                f"{path}: not valid UTF-16 text ({e.reason})", hint="re-save the file as UTF-8"
            ) from None
    if b"\x00" in data[:4096] and not data.startswith(b"\xef\xbb\xbf"):
        raise DatasetError(
            f"{path}: looks like a binary file, not a text table (NUL bytes found)",
            hint="pass a CSV/TSV/JSONL file saved as UTF-8 text",
        )
    for enc in ("utf-8", "utf-8-sig"):
        try:
            text = data.decode(enc)
            return (text[1:] if text.startswith("\ufeff") else text), enc
        except UnicodeDecodeError:
            continue
    lines = data.splitlines()
    bad = [i + 1 for i, line in enumerate(lines) if not is_utf8(line)]
    where = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    if any(not line.isascii() and is_utf8(line) for line in lines):
        enc = f"utf-8, with {len(bad)} of {len(lines)} lines in windows-1252: line {where}"
    else:
        enc = "windows-1252"
    if warn:
        logger.warning("%s is not UTF-8: decoded as Windows-1252/Latin-1 (%s)", path, enc)
    return data.decode("utf-8", errors="advisor-cp1252").lstrip("\ufeff"), enc


def is_utf8(value: str | bytes) -> bool:
    """Whether `value` is valid UTF-8: bytes that decode, or a name that encodes (no lone surrogates standing
    for undecodable bytes)."""
    try:
        if isinstance(value, str):
            value.encode("utf-8")
        else:
            value.decode("utf-8")
        return True
    except UnicodeError:
        return False


def _read_bytes(path: Path, *, hint: str = "make the file readable", name_permission: bool = False) -> bytes:
    """The bytes of `path`.

    Raises:
        DatasetError: unreadable, with `hint`; with `name_permission`, a permission denial says so (and its hint
            is always "make the file readable").
    """
    try:
        return path.read_bytes()
    except OSError as e:
        if name_permission and isinstance(e, PermissionError):
            raise DatasetError(
                f"{path}: permission denied ({e.strerror})", hint="make the file readable"
            ) from None
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})", hint=hint) from None


def decode_text_file(path: Path, *, legacy: list[Path] | None = None) -> str:
    """The text of a whole file (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252; see `_decode`).

    Args:
        path: the file.
        legacy: when given, a file decoded as Windows-1252 is appended to it instead of being warned about
            (a folder of text files then gets one warning for all of them).

    Raises:
        DatasetError: unreadable or binary.
    """
    text, enc = _decode(path, _read_bytes(path), warn=legacy is None)
    if legacy is not None and "1252" in enc:
        legacy.append(path)
    return text


def read_table(path: Path) -> Table:
    """Read a CSV/TSV/JSONL/JSON-records/Parquet file into string rows.

    Rows with malformed JSON or the wrong number of fields are skipped with a reason. A file (or rows) that is
    not UTF-8 is decoded as Windows-1252 (Latin-1) with one warning naming the lines; ``Table.encoding`` says
    which encoding was used.

    Raises:
        DatasetError: unreadable, binary or empty.
    """
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    data = _read_bytes(path, hint="check the path", name_permission=True)
    if not data.strip():
        raise DatasetError(f"{path}: the file is empty", hint="pass a table with a header row and data rows")
    text, enc = _decode(path, data, warn=False)  # the reader notes the encoding (Dataset.notes)
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson") or (ext == ".json" and text.lstrip().startswith("{")):
        table = _read_jsonl(path, text)
    elif ext == ".json":
        table = _read_json_list(path, text)
    else:
        table = _read_delimited(path, text, "\t" if ext == ".tsv" else None)
    table.encoding = enc
    return table


def guess_delimiter(text: str) -> str:
    """The delimiter of a delimited file from its header line (``,`` ``\t`` ``;`` ``|``, default ``,``).

    The header is used rather than `csv.Sniffer` on data rows: free text in rows is full of commas and
    semicolons, which makes sniffing unreliable, while column names rarely contain delimiters.
    """
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _read_delimited(path: Path, text: str, delimiter: str | None) -> Table:
    if delimiter is None:
        delimiter = guess_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise DatasetError(
            f"{path}: no header row ({e})", hint="the first line must name the columns"
        ) from None
    columns = [c.strip() for c in header]
    table = Table(path, columns, [])
    n = -1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            n += 1
            table.skipped.append(SkippedItem(f"{path}:row {n}", f"malformed CSV row: {e}", "bad-row"))
            continue
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        n += 1
        if len(values) != len(columns):
            table.skipped.append(
                SkippedItem(
                    f"{path}:row {n}", f"has {len(values)} fields, the header has {len(columns)}", "bad-row"
                )
            )
            continue
        table.rows.append((n, dict(zip(columns, values, strict=True))))
    return table


def _stringify(v) -> str | None:
    if v is None:
        return None
    if hasattr(v, "item") and type(v).__module__ == "numpy":  # a numpy scalar (Parquet via pandas)
        v = v.item()
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON NaN/Infinity (pandas' missing value): never a label or a text
    if isinstance(v, (int, float)):
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return json.dumps(v, ensure_ascii=False, default=str)  # default: a Parquet timestamp or decimal


def _read_jsonl(path: Path, text: str) -> Table:
    columns: list[str] = []
    seen: set[str] = set()
    table = Table(path, columns, [])
    n = -1
    for line in text.splitlines():
        if not line.strip():
            continue
        n += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            table.skipped.append(SkippedItem(f"{path}:row {n}", f"not valid JSON: {e.msg}", "bad-row"))
            continue
        if not isinstance(obj, dict):
            table.skipped.append(
                SkippedItem(f"{path}:row {n}", "a JSON line that is not an object", "bad-row")
            )
            continue
        for k in obj:
            if k not in seen:
                seen.add(k)
                columns.append(k)
        table.rows.append((n, {k: _stringify(v) for k, v in obj.items()}))
    return table


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:3] if p.isdigit())


def _hf_class_names(path: Path) -> dict[str, list[str]]:
    """The class names of a Hugging Face Parquet file's ``ClassLabel`` columns, from the ``huggingface`` entry of
    its schema metadata (``{}`` when there is none or it cannot be read: the integers are then the labels)."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        features = json.loads(meta.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
        return {
            str(col): [str(n) for n in f["names"]]
            for col, f in features.items()
            if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)
        }
    except Exception:  # metadata is a convenience: a file without it, or with another layout, reads as it is
        return {}


def _read_parquet(path: Path) -> Table:
    """A Parquet file's rows, read by pandas (with pyarrow >= 14.0.1, whose readers unpickle nothing).

    Raises:
        DatasetError: pandas/pyarrow missing, unreadable, or a column of embedded media bytes (the Hugging Face
            image/audio layout), which needs exporting to files first.
    """
    try:
        import pandas as pd
    except ImportError:
        raise DatasetError(
            f"{path}: reading Parquet needs pandas", hint="pip install pandas pyarrow"
        ) from None
    try:
        import pyarrow
    except ImportError:
        raise DatasetError(
            f"{path}: reading Parquet needs pyarrow", hint="pip install 'pyarrow>=14.0.1'"
        ) from None
    if _version_tuple(pyarrow.__version__) < (14, 0, 1):
        raise DatasetError(
            f"{path}: pyarrow {pyarrow.__version__} can run code from a Parquet file (CVE-2023-47248)",
            hint="pip install 'pyarrow>=14.0.1'",
        )
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except OSError as e:
        if isinstance(e, PermissionError):
            raise DatasetError(
                f"{path}: permission denied ({e.strerror})", hint="make the file readable"
            ) from None
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})", hint="check the path") from None
    except Exception as e:  # a damaged or non-Parquet file: pyarrow raises several types
        raise DatasetError(
            f"{path}: not a readable Parquet file ({type(e).__name__}: {str(e)[:200]})",
            hint="re-export the table (or use CSV/JSONL)",
        ) from None
    columns = [str(c) for c in df.columns]
    records = df.astype(object).where(df.notna(), None).to_dict(orient="records")  # NaN/NA/NaT: None
    for col, names in _hf_class_names(path).items():  # Hugging Face ClassLabel ints -> their names
        for r in records:
            v = r.get(col)
            v = v.item() if hasattr(v, "item") else v
            if isinstance(v, int) and 0 <= v < len(names):
                r[col] = names[v]
            elif v == -1:  # the datasets library's "no label" (e.g. a benchmark's hidden test labels)
                r[col] = None
    for c in columns:
        first = next((r[c] for r in records if r[c] is not None), None)
        if isinstance(first, (bytes, bytearray)) or (isinstance(first, dict) and "bytes" in first):
            raise DatasetError(
                f"{path}: column {c!r} holds embedded file bytes (images or audio inside the Parquet file), "
                "which advisor does not read",
                hint="export them to files: class folders, or a manifest with path,label columns",
            )
    return Table(
        path, columns, [(i, {str(k): _stringify(v) for k, v in r.items()}) for i, r in enumerate(records)]
    )


def _read_json_list(path: Path, text: str) -> Table:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"{path}: not valid JSON ({e.msg}, line {e.lineno})", hint="fix the JSON"
        ) from None
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise DatasetError(
            f"{path}: a JSON file must hold a list of records (objects)",
            hint="or use JSONL: one object per line",
        )
    columns: list[str] = []
    for r in obj:
        for k in r:
            if k not in columns:
                columns.append(k)
    return Table(path, columns, [(i, {k: _stringify(v) for k, v in r.items()}) for i, r in enumerate(obj)])


def find_column(columns: list[str], requested: str | None, defaults: tuple[str, ...], what: str, path: Path,
                flag: str) -> str | None:  # fmt: skip
    """The column to use: `requested` (must exist, case-insensitive) or the first default present, else None.

    Raises:
        DatasetError: `requested` is not a column.
    """
    lower = {c.lower(): c for c in columns}
    if requested is not None:
        if requested in columns:
            return requested
        if requested.lower() in lower:
            return lower[requested.lower()]
        raise DatasetError(
            f"{path}: no {what} column {requested!r} (columns: {', '.join(columns)})",
            hint=f"pass {flag} with one of the columns above",
        )
    for name in defaults:
        if name in lower:
            return lower[name]
    return None


def looks_like_paths(values: list[str]) -> bool:
    """True when most values look like media file names (by extension)."""
    from advisor.data.scan import kind_from_ext

    vals = [v for v in values if v]
    if not vals:
        return False
    hits = sum(1 for v in vals if kind_from_ext(v) in ("image", "audio") or os.sep in v or "/" in v)
    return hits >= max(1, int(0.8 * len(vals)))
