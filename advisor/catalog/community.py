"""The catalog's "community" signal: Hub download and like counts and last modification, per Hugging Face repo.

`advisor catalog community` (`fetch_community`) asks the Hugging Face Hub, through ``huggingface_hub``
(``HfApi.model_info`` with ``expand=`` the few properties needed), for every catalog entry whose weights live in a
Hub repo: ``hf:`` entries (their ``source_id``) and timm entries whose weights the timm table places on the Hub. The
answers go to a small derived file, catalog/community.json, kept apart from catalog.jsonl so that rebuilding the
catalog from the upstream tables still reproduces the committed records exactly. Each record is dated and says
where it came from (retrieval time in UTC, the ``huggingface_hub`` version and the endpoint).

Figures mean what the Hub says they mean: ``downloads`` is the Hub's count over the last 30 days (not all time;
``downloads_all_time`` is recorded beside it), ``likes`` the current like count, ``last_modified`` the date of the
repo's last commit. Without the file, or for a repo it lacks, every field is unknown (``None``), never 0.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.catalog.files import COMMUNITY_FILE, data_file
from advisor.errors import CatalogError, UsageError

if TYPE_CHECKING:
    from advisor.catalog.schema import CatalogEntry

# optional path of a community file to read instead of the shipped one
COMMUNITY_ENV = "ADVISOR_CATALOG_COMMUNITY"
SCHEMA_VERSION = 1
DOWNLOADS_WINDOW = "last 30 days"
# The Hub API properties asked for (`expand=`): only these come back, so one call is small.
EXPAND = ("downloads", "downloadsAllTime", "likes", "lastModified", "sha")
COMMUNITY_KEYS = ("downloads", "likes")  # sort keys `advisor catalog list --sort` takes from this file
FIELDS = {
    "downloads": f"downloads over the {DOWNLOADS_WINDOW}, as the Hub counts them (huggingface_hub ModelInfo.downloads)",
    "downloads_all_time": "downloads since the repo was created (ModelInfo.downloads_all_time)",
    "likes": "likes of the repo when retrieved (ModelInfo.likes)",
    "last_modified": "date of the last commit to the repo, UTC (ModelInfo.last_modified)",
    "sha": "the repo commit last_modified refers to (ModelInfo.sha)",
    "retrieved_at": "when the Hub was asked, UTC",
    "client": "the huggingface_hub version that asked",
    "endpoint": "the Hub endpoint asked",
}
_TIMM_HUB_RE = re.compile(r"weights from the Hugging Face hub \(([^()\s/]+/[^()\s]+)\)")
_TRUE = {"1", "true", "yes", "on"}  # as `advisor.models.hub.env_offline` reads the offline variables
_MAX_RETRIES = 3  # on HTTP 429 (rate limited), waiting as the Hub's Retry-After says (capped)
_MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class CommunityRecord:
    """What the Hub said about one repo, and when. ``None`` is unknown (the Hub did not say), never 0.

    Attributes:
        hub_repo: the Hub repo id asked about, e.g. ``google-bert/bert-base-uncased``.
        downloads: downloads over the last 30 days (the Hub's window).
        downloads_all_time: downloads since the repo was created.
        likes: like count.
        last_modified: ISO 8601 UTC time of the repo's last commit.
        sha: the commit `last_modified` refers to.
        retrieved_at: ISO 8601 UTC time the Hub was asked.
        client: ``huggingface_hub <version>`` that asked.
        endpoint: the Hub endpoint asked, e.g. ``https://huggingface.co``.
    """

    hub_repo: str
    downloads: int | None
    downloads_all_time: int | None
    likes: int | None
    last_modified: str | None
    sha: str | None
    retrieved_at: str
    client: str
    endpoint: str

    @property
    def as_of(self) -> str:
        """The retrieval date (YYYY-MM-DD, UTC)."""
        return self.retrieved_at[:10]

    @property
    def provenance(self) -> str:
        """``as of <date>, source huggingface_hub <version> (<endpoint>)``."""
        return f"as of {self.as_of}, source {self.client} ({self.endpoint})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the downloads window and the provenance line spelled out."""
        return {**asdict(self), "downloads_window": DOWNLOADS_WINDOW, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, hub_repo: str, d: dict[str, Any]) -> CommunityRecord:
        """A record from its entry in the file's ``models`` (keyed by `hub_repo`).

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        for k in ("downloads", "downloads_all_time", "likes"):
            v = d.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{k} must be a non-negative integer or null, got {v!r}")
        for k in ("retrieved_at", "client", "endpoint"):
            if not isinstance(d.get(k), str) or not d[k]:
                raise ValueError(f"{k} is missing")
        return cls(
            hub_repo=hub_repo,
            downloads=d.get("downloads"),
            downloads_all_time=d.get("downloads_all_time"),
            likes=d.get("likes"),
            last_modified=d.get("last_modified"),
            sha=d.get("sha"),
            retrieved_at=d["retrieved_at"],
            client=d["client"],
            endpoint=d["endpoint"],
        )


# ------------------------------------------------------------------------------------------------------ lookup


def hub_repo_of(entry: CatalogEntry) -> str | None:
    """The Hugging Face Hub repo holding the entry's weights, or None (torchvision, packaged, local weights).

    ``hf:`` entries are their ``source_id``; a timm entry's repo is the one timm's pretrained_cfgs table names
    (``hf_hub_id``), which the catalog records in its ``probe_note``.
    """
    if entry.source == "hf":
        return entry.source_id
    if entry.source == "timm" and entry.probe_note:
        m = _TIMM_HUB_RE.search(entry.probe_note)
        if m:
            return m.group(1)
    return None


def _utc_iso(dt: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_community_path() -> Path | None:
    """The community file `show`/`list` read: $ADVISOR_CATALOG_COMMUNITY, else the shipped one, else None.

    Raises:
        CatalogError: $ADVISOR_CATALOG_COMMUNITY names something that is not a file.
    """
    env = os.environ.get(COMMUNITY_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise CatalogError(
                f"{COMMUNITY_ENV}={env} is not a file",
                hint="point it at a file `advisor catalog community --out PATH` wrote, or unset it",
            )
        return p
    return data_file(COMMUNITY_FILE)


def read_community_file(path: Path) -> dict[str, Any]:
    """The parsed community file (``models`` and ``errors`` dicts always present).

    Raises:
        CatalogError: the file cannot be read or is not a community file; the message names it.
    """
    hint = "rerun `advisor catalog community` to rewrite it, or delete it (the fields are then unknown)"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CatalogError(f"{path}: cannot read the community file ({e.strerror or e})", hint=hint) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise CatalogError(f"{path}: the community file is not valid JSON ({why})", hint=hint) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise CatalogError(f"{path}: not a community file (no `models` object)", hint=hint)
    if data.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise CatalogError(
            f"{path}: community file schema {data.get('schema')!r}, this advisor reads {SCHEMA_VERSION}",
            hint=hint,
        )
    if not isinstance(data.get("errors", {}), dict):
        data["errors"] = {}
    data.setdefault("errors", {})
    return data


def _records(data: dict[str, Any], path: Path) -> dict[str, CommunityRecord]:
    out = {}
    for repo, d in data["models"].items():
        try:
            if not isinstance(d, dict):
                raise ValueError("not an object")
            out[repo] = CommunityRecord.from_dict(repo, d)
        except ValueError as e:
            raise CatalogError(
                f"{path}: invalid community record {repo[:80]!r}: {e}",
                hint="rerun `advisor catalog community --refresh` to rewrite it, or delete the file",
            ) from None
    return out


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, CommunityRecord]:
    p = Path(path)
    return _records(read_community_file(p), p)


def load_community(path: Path | str | None = None) -> dict[str, CommunityRecord]:
    """The community records by Hub repo id; empty when there is no community file (every field unknown).

    Args:
        path: the file to read (default: `default_community_path`).

    Raises:
        CatalogError: the file exists but is unreadable or invalid.
    """
    p = Path(path) if path is not None else default_community_path()
    if p is None or not p.is_file():
        return {}
    st = p.stat()
    return _load(str(p.resolve()), st.st_mtime_ns, st.st_size)


def community_of(
    entry: CatalogEntry, records: dict[str, CommunityRecord] | None = None
) -> CommunityRecord | None:
    """The community record of a catalog entry, or None when unknown (no Hub repo, or not in the file)."""
    repo = hub_repo_of(entry)
    if repo is None:
        return None
    return (load_community() if records is None else records).get(repo)


def community_value(
    entry: CatalogEntry, key: str, records: dict[str, CommunityRecord] | None = None
) -> int | None:
    """The entry's figure for one of COMMUNITY_KEYS (``downloads`` is the last 30 days), or None when unknown."""
    rec = community_of(entry, records)
    return None if rec is None else getattr(rec, key)


# ------------------------------------------------------------------------------------------------------- fetch


def community_repos(entries: Iterable[CatalogEntry], sources: Sequence[str] = ("hf", "timm")) -> list[str]:
    """The distinct Hub repos of the entries from `sources`, in catalog order."""
    seen: dict[str, None] = {}
    for e in entries:
        if e.source in sources:
            repo = hub_repo_of(e)
            if repo:
                seen.setdefault(repo, None)
    return list(seen)


def env_offline_value(value: str) -> bool:
    """True when an offline variable's value asks for offline mode."""
    return value.strip().lower() in _TRUE


def require_online(offline: bool | None = None) -> None:
    """Fail fast when offline: the community step is the one catalog step that needs the network.

    Raises:
        CatalogError: offline (an offline variable is set, or huggingface.co cannot be reached).
    """
    from advisor.models.hub import HUB_HOST, env_offline, is_offline

    if not is_offline(offline):
        return
    if offline is None and env_offline():
        names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ADVISOR_OFFLINE")
        set_ = [f"{k}={os.environ[k]}" for k in names if env_offline_value(os.environ.get(k, ""))]
        why = f"offline mode is set ({', '.join(set_)})"
    else:
        why = "offline was asked for" if offline else f"{HUB_HOST}:443 cannot be reached"
    raise CatalogError(
        f"`advisor catalog community` needs the Hugging Face Hub and this machine is offline: {why}",
        hint="run it on a machine with network access (offline variables unset); offline, the community "
        "fields stay unknown",
    )


def error_kind(exc: BaseException) -> str:
    """A short name for why one repo could not be asked about: not_found, gated, rate_limited, http_<code>,
    timeout, network or the exception's type name."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError, its base class
        return "gated"
    if isinstance(exc, RepositoryNotFoundError):
        return "not_found"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return "rate_limited" if status == 429 else f"http_{status}" if status else "http_error"
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return "timeout"
    if isinstance(exc, OSError) or "connect" in name or "network" in name:
        return "network"
    return type(exc).__name__


def _retry_after(exc: BaseException, attempt: int) -> float:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        wait = float(headers.get("retry-after") or headers.get("Retry-After") or 0)
    except (TypeError, ValueError):
        wait = 0.0
    return min(_MAX_WAIT_S, wait if wait > 0 else 2.0 ** (attempt + 1))


def record_from_info(info: Any, *, retrieved_at: str, client: str, endpoint: str) -> CommunityRecord:
    """A record from a ``huggingface_hub.ModelInfo`` (fields it lacks stay None)."""
    lm = getattr(info, "last_modified", None)
    return CommunityRecord(
        hub_repo=info.id,
        downloads=getattr(info, "downloads", None),
        downloads_all_time=getattr(info, "downloads_all_time", None),
        likes=getattr(info, "likes", None),
        last_modified=_utc_iso(lm) if isinstance(lm, datetime) else lm,
        sha=getattr(info, "sha", None),
        retrieved_at=retrieved_at,
        client=client,
        endpoint=endpoint,
    )


def _payload(data: dict[str, Any]) -> dict[str, Any]:
    """The file's JSON: metadata, then models and errors sorted by repo id (stable diffs)."""
    models = {k: data["models"][k] for k in sorted(data["models"])}
    errors = {k: data["errors"][k] for k in sorted(data["errors"])}
    return {
        "schema": SCHEMA_VERSION,
        "what": "community signal per Hugging Face Hub repo, derived by `advisor catalog community`",
        "source": "huggingface_hub HfApi.model_info(expand=" + ", ".join(EXPAND) + ")",
        "downloads_window": DOWNLOADS_WINDOW,
        "fields": FIELDS,
        "updated_at": data.get("updated_at"),
        "models": models,
        "errors": errors,
    }


def _write(data: dict[str, Any], path: Path) -> None:
    from advisor.io import atomic_write_text

    atomic_write_text(path, json.dumps(_payload(data), indent=1, ensure_ascii=False) + "\n")


def _ask(api: Any, repo: str, timeout: float | None, sleep: Callable[[float], None]) -> Any:
    """``api.model_info`` for the community properties, waiting and retrying when rate limited (HTTP 429)."""
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(_MAX_RETRIES + 1):
        try:
            return api.model_info(repo, expand=list(EXPAND), timeout=timeout)
        except HfHubHTTPError as e:
            if error_kind(e) != "rate_limited" or attempt == _MAX_RETRIES:
                raise
            sleep(_retry_after(e, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n", 1)[0].split())
    return (text or type(exc).__name__)[:300]


def _start(out: Path) -> dict[str, Any]:
    """What is already in `out` (records are checked), or an empty file's content."""
    if not out.exists():
        return {"models": {}, "errors": {}}
    if not out.is_file():
        raise UsageError(f"--out {out} is not a file", hint="pass the path of a JSON file to write")
    data = read_community_file(out)
    _records(data, out)
    return data


def _ask_and_record(
    data: dict[str, Any],
    repo: str,
    api: Any,
    timeout: float | None,
    sleep: Callable[[float], None],
    *,
    stamp: str,
    client: str,
    endpoint: str,
) -> dict[str, str] | None:
    """Ask about one repo and put the answer in ``data["models"]``, or its failure in ``data["errors"]``.

    Returns:
        None when recorded, else the error record (error kind, one-line message, retrieved_at, client, endpoint).
    """
    try:
        info = _ask(api, repo, timeout, sleep)
    except Exception as e:  # one repo's failure is recorded, never a traceback
        err = {"error": error_kind(e), "message": _one_line(e), "retrieved_at": stamp}
        data["errors"][repo] = err | {"client": client, "endpoint": endpoint}
        return err
    d = asdict(record_from_info(info, retrieved_at=stamp, client=client, endpoint=endpoint))
    del d["hub_repo"]  # the key: the asked id, even where the Hub redirects to a renamed repo
    data["models"][repo] = d
    data["errors"].pop(repo, None)
    return None


def fetch_community(
    repos: Sequence[str],
    out: Path | str,
    *,
    refresh: bool = False,
    limit: int | None = None,
    api: Any = None,
    offline: bool | None = None,
    timeout: float | None = 10.0,
    delay: float = 0.05,
    checkpoint_every: int = 25,
    progress: Callable[[int, int], None] | None = None,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Ask the Hub about each repo and record the answers in `out`, resumably.

    Repos `out` already has are skipped unless `refresh`; the file is rewritten atomically every
    `checkpoint_every` answers and when the run ends (interrupted too), so a rerun resumes. A repo the Hub cannot
    answer for (404, gated, rate limited past the retries, timeout, network) is counted, kept under ``errors``
    with its reason, and asked again by the next run; it never stops the run.

    Args:
        repos: Hub repo ids (duplicates are asked once).
        out: the community file to update.
        refresh: ask again about repos already recorded.
        limit: ask about at most this many repos in this run (the rest are left for the next).
        api: an ``huggingface_hub.HfApi`` (default: a new one, with the user's token if logged in).
        offline: force offline/online; None decides from the environment (`advisor.models.hub.is_offline`).
        timeout: seconds per request.
        delay: seconds to wait between requests (rate friendliness).
        checkpoint_every: answers between rewrites of `out`.
        progress: called with (done, total) after each repo.
        now: the clock (UTC datetimes), for tests.
        sleep: the wait function, for tests.

    Returns:
        A summary: path, requested, fetched, already (skipped), left (past `limit`), errors (count per kind),
        failed (the first 20 repos with their reason), recorded (repos in the file), client, endpoint.

    Raises:
        CatalogError: offline, or `out` exists but is not a valid community file.
        StorageError: `out` cannot be written.
    """
    require_online(offline)
    import huggingface_hub

    if api is None:
        api = huggingface_hub.HfApi()
    client = f"huggingface_hub {huggingface_hub.__version__}"
    endpoint = str(getattr(api, "endpoint", None) or huggingface_hub.constants.ENDPOINT)
    clock = now or (lambda: datetime.now(timezone.utc))
    out = Path(out)
    data = _start(out)
    wanted = list(dict.fromkeys(repos))
    todo = [r for r in wanted if refresh or r not in data["models"]]
    already = len(wanted) - len(todo)
    left = todo[limit:] if limit is not None else []
    todo = todo[:limit] if limit is not None else todo
    counts: Counter[str] = Counter()
    failed: list[dict[str, str]] = []
    fetched = 0
    try:
        for i, repo in enumerate(todo):
            if i and delay > 0:
                sleep(delay)
            stamp = _utc_iso(clock())
            err = _ask_and_record(
                data, repo, api, timeout, sleep, stamp=stamp, client=client, endpoint=endpoint
            )
            if err is None:
                fetched += 1
            else:
                counts[err["error"]] += 1
                if len(failed) < 20:
                    failed.append({"hub_repo": repo, "error": err["error"], "message": err["message"]})
            if progress is not None:
                progress(i + 1, len(todo))
            if checkpoint_every > 0 and (i + 1) % checkpoint_every == 0 and i + 1 < len(todo):
                data["updated_at"] = stamp
                _write(data, out)
    finally:
        if todo:
            data["updated_at"] = _utc_iso(clock())
            _write(data, out)
    return {
        "path": str(out),
        "requested": len(wanted),
        "fetched": fetched,
        "already": already,
        "left": len(left),
        "errors": dict(sorted(counts.items())),
        "failed": failed,
        "recorded": len(data["models"]),
        "client": client,
        "endpoint": endpoint,
        "downloads_window": DOWNLOADS_WINDOW,
    }
