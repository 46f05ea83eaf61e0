"""Reading tables (CSV, TSV, JSONL, JSON records) robustly: encodings, delimiters, bad rows, column choice."""

from __future__ import annotations

import csv
import io
import json
import os
import re
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

_SURROGATE = re.compile("[\udc80-\udcff]")
# Long documents in one cell are fine (the csv module's default cap is 128 KiB per field).
csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
# Share of rows that may fail to decode before the whole file is rejected instead of skipping those rows.
MAX_BAD_ROW_FRACTION = 0.2


@dataclass
class Table:
    """Rows of a table file as dicts of strings, with the rows that could not be used."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (0-based data row number, row)
    skipped: list[SkippedItem] = field(default_factory=list)
    encoding: str = "utf-8"


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    """Decode bytes: UTF-16/32 by BOM, else UTF-8 (with or without BOM). Undecodable bytes become surrogates
    (surrogateescape) so the rows holding them can be reported and skipped one by one."""
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
    return data.decode("utf-8", errors="surrogateescape").lstrip("\ufeff"), "utf-8 (with invalid bytes)"


def decode_text_file(path: Path) -> str:
    """The text of a whole file (UTF-8 with or without BOM, or UTF-16 with BOM).

    Raises:
        DatasetError: unreadable, binary or not UTF-8.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(
            f"{path}: cannot read ({e.strerror or e})", hint="make the file readable"
        ) from None
    text, _ = _decode(path, data)
    if _SURROGATE.search(text):
        raise DatasetError(f"{path}: not valid UTF-8 text", hint="re-save the file as UTF-8")
    return text


def _bad_encoding_error(path: Path, n_bad: int, n: int) -> DatasetError:
    return DatasetError(
        f"{path}: {n_bad} of {n} rows are not valid UTF-8 text",
        hint=f"re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`",
    )


def read_table(path: Path) -> Table:
    """Read a CSV/TSV/JSONL/JSON-records file into string rows.

    Rows with undecodable bytes, malformed JSON or the wrong number of fields are skipped with a reason;
    if more than 20% of rows are undecodable the file is rejected with a DatasetError naming the fix.

    Raises:
        DatasetError: unreadable, binary, empty, or mostly undecodable.
    """
    try:
        data = path.read_bytes()
    except PermissionError as e:
        raise DatasetError(
            f"{path}: permission denied ({e.strerror})", hint="make the file readable"
        ) from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})", hint="check the path") from None
    if not data.strip():
        raise DatasetError(f"{path}: the file is empty", hint="pass a table with a header row and data rows")
    text, enc = _decode(path, data)
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson") or (ext == ".json" and text.lstrip().startswith("{")):
        table = _read_jsonl(path, text)
    elif ext == ".json":
        table = _read_json_list(path, text)
    else:
        table = _read_delimited(path, text, "\t" if ext == ".tsv" else None)
    table.encoding = enc
    n_bad = sum(1 for s in table.skipped if s.code == "bad-encoding")
    n_total = len(table.rows) + len(table.skipped)
    if n_bad and n_bad > MAX_BAD_ROW_FRACTION * max(n_total, 1):
        raise _bad_encoding_error(path, n_bad, n_total)
    return table


def _row_has_bad_bytes(values) -> bool:
    return any(isinstance(v, str) and _SURROGATE.search(v) for v in values)


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
    dirty = _SURROGATE.search(text) is not None  # per-row checks only when some bytes did not decode
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
    if _row_has_bad_bytes(columns):
        raise DatasetError(f"{path}: the header row is not valid UTF-8", hint="re-save the file as UTF-8")
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
        if dirty and _row_has_bad_bytes(values):
            table.skipped.append(SkippedItem(f"{path}:row {n}", "not valid UTF-8 text", "bad-encoding"))
            continue
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
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return json.dumps(v, ensure_ascii=False)


def _read_jsonl(path: Path, text: str) -> Table:
    columns: list[str] = []
    seen: set[str] = set()
    table = Table(path, columns, [])
    n = -1
    for line in text.splitlines():
        if not line.strip():
            continue
        n += 1
        if _SURROGATE.search(line):
            table.skipped.append(SkippedItem(f"{path}:row {n}", "not valid UTF-8 text", "bad-encoding"))
            continue
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


def _read_json_list(path: Path, text: str) -> Table:
    if _SURROGATE.search(text):
        raise DatasetError(f"{path}: not valid UTF-8 text", hint="re-save the file as UTF-8")
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
