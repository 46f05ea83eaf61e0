"""The benchmark results store: an SQLite file (``cache_dir()/bench.sqlite``) of every run, keyed by model, settings
and hardware fingerprint, so later runs and reports reuse and compare figures instead of re-measuring.

Two tables: ``results`` holds one row per `BenchResult` (the whole record as JSON, with its key), ``figures`` one
row per (precision, batch size) with the headline numbers, for queries such as "p50 latency of model X at batch 8
in bf16 on this machine".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from advisor.errors import ResultsError, StorageError
from advisor.io import storage_error
from advisor.paths import CACHE_ENV

# sqlite's messages for a store it cannot write (its error codes are not exposed before Python 3.11)
_STORAGE_MESSAGES = (
    "readonly",
    "read-only",
    "unable to open",
    "disk is full",
    "disk i/o error",
    "permission",
)


def _is_storage_failure(e: sqlite3.OperationalError) -> bool:
    return any(m in str(e).lower() for m in _STORAGE_MESSAGES)


SCHEMA_VERSION = 1
DB_NAME = "bench.sqlite"

_DDL = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    model_id TEXT NOT NULL,
    settings_key TEXT NOT NULL,
    hardware_key TEXT NOT NULL,
    device TEXT NOT NULL,
    created_at TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_key ON results (key);
CREATE INDEX IF NOT EXISTS results_model ON results (model_id, hardware_key);
CREATE TABLE IF NOT EXISTS figures (
    result_id INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    hardware_key TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    requested_batch_size INTEGER NOT NULL,
    channels_last INTEGER NOT NULL,
    compile TEXT,
    threads INTEGER,
    status TEXT NOT NULL,
    p50_ms REAL,
    p90_ms REAL,
    p99_ms REAL,
    iqr_ms REAL,
    throughput_items_per_s REAL,
    peak_memory_mb REAL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS figures_lookup ON figures (model_id, device, precision, batch_size);
"""


class ResultsStore:
    """SQLite store of benchmark results.

    Args:
        path: the database file; default ``advisor.paths.cache_dir()/"bench.sqlite"`` (honours $ADVISOR_CACHE_DIR).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from advisor.paths import cache_dir

            path = cache_dir() / DB_NAME
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage_error(self.path.parent, e) from e
        try:
            with self._connect() as con:
                con.executescript(_DDL)
        except sqlite3.DatabaseError as e:
            raise ResultsError(
                f"benchmark store {self.path} is not a readable SQLite database ({e})",
                hint="move it aside; a new one is created on the next run",
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction (committed on success, rolled back on error); a store that cannot be written (read-only
        folder or file, full disk) raises `StorageError`."""
        try:
            con = sqlite3.connect(self.path, timeout=30)
        except sqlite3.OperationalError as e:
            raise self._storage_error(e) from e
        con.row_factory = sqlite3.Row
        try:
            with con:
                yield con
        except sqlite3.OperationalError as e:
            if _is_storage_failure(e):
                raise self._storage_error(e) from e
            raise
        finally:
            con.close()

    def _storage_error(self, e: sqlite3.OperationalError) -> StorageError:
        full = "full" in str(e).lower()
        return StorageError(
            f"cannot write the benchmark store {self.path}: {e}",
            hint=("free disk space, or " if full else "") + f"set {CACHE_ENV} to a writable folder",
        )

    def put(self, record: Any) -> int:
        """Append a result (a `BenchResult` or its ``to_dict()``); returns its row id. Earlier rows are kept."""
        from advisor.io import to_jsonable

        d = to_jsonable(record.to_dict() if hasattr(record, "to_dict") else record)
        for k in ("key", "model_id", "settings_key", "hardware"):
            if k not in d:
                raise ResultsError(f"benchmark record lacks {k!r}; cannot store it")
        created = d.get("created_at") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cfg = d.get("config", {})
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO results (key, model_id, settings_key, hardware_key, device, created_at, schema_version,"
                " record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    d["key"],
                    d["model_id"],
                    d["settings_key"],
                    d["hardware"]["key"],
                    d.get("device", "?"),
                    created,
                    SCHEMA_VERSION,
                    json.dumps(d, sort_keys=True),
                ),
            )
            rid = int(cur.lastrowid or 0)
            for r in d.get("records", []):
                lat = r.get("latency") or {}
                mem = r.get("memory") or {}
                peak = mem.get("gpu_peak_allocated_mb")
                if peak is None:
                    peak = mem.get("cpu_rss_delta_mb")
                con.execute(
                    "INSERT INTO figures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rid,
                        d["model_id"],
                        d["hardware"]["key"],
                        d.get("device", "?"),
                        r["precision"],
                        r.get("batch_size") or 0,
                        r["requested_batch_size"],
                        int(bool(cfg.get("channels_last"))),
                        cfg.get("compile_mode") if cfg.get("compile") else None,
                        r.get("threads"),
                        r["status"],
                        lat.get("p50_ms"),
                        lat.get("p90_ms"),
                        lat.get("p99_ms"),
                        lat.get("iqr_ms"),
                        r.get("throughput_items_per_s"),
                        peak,
                        created,
                    ),
                )
        return rid

    def get(self, key: str) -> dict[str, Any] | None:
        """The newest stored record with this key (model + settings + hardware), or ``None``."""
        with self._connect() as con:
            row = con.execute(
                "SELECT record FROM results WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
        return json.loads(row["record"]) if row else None

    def find(
        self,
        model_id: str | None = None,
        *,
        hardware_key: str | None = None,
        device: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored records, newest first, optionally filtered by model, hardware key and device."""
        filters = {"model_id": model_id, "hardware_key": hardware_key, "device": device}
        rows = self._select("SELECT record FROM results", filters, order_by="id", limit=limit)
        return [json.loads(r["record"]) for r in rows]

    def figures(
        self,
        model_id: str | None = None,
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        hardware_key: str | None = None,
        status: str | None = "ok",
    ) -> list[dict[str, Any]]:
        """Headline figures (one per precision x batch size per run), newest first, as plain dicts."""
        filters = {
            "model_id": model_id,
            "device": device,
            "precision": precision,
            "batch_size": batch_size,
            "hardware_key": hardware_key,
            "status": status,
        }
        return [dict(r) for r in self._select("SELECT * FROM figures", filters, order_by="result_id")]

    def _select(
        self, select: str, filters: dict[str, Any], *, order_by: str, limit: int | None = None
    ) -> list[sqlite3.Row]:
        """`select` with ``col = value`` for each filter that is not None, newest (largest `order_by`) first.

        The column names come from this module, never from a caller's input; the values are bound.
        """
        q, args = f"{select} WHERE 1=1", []
        for col, val in filters.items():
            if val is not None:
                q += f" AND {col} = ?"
                args.append(val)
        q += f" ORDER BY {order_by} DESC"
        if limit:
            q += f" LIMIT {int(limit)}"
        with self._connect() as con:
            return con.execute(q, args).fetchall()

    def latest_figure(
        self,
        model_id: str,
        *,
        batch_size: int,
        precision: str = "fp32",
        device: str = "cpu",
        hardware_key: str | None = None,
    ) -> dict[str, Any] | None:
        """The newest successful figure for this model/batch/precision/device (this machine if ``hardware_key``)."""
        rows = self.figures(
            model_id, device=device, precision=precision, batch_size=batch_size, hardware_key=hardware_key
        )
        return rows[0] if rows else None

    def count(self) -> int:
        """Number of stored results."""
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
