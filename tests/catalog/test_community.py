"""The community signal (`advisor catalog community`): Hub answers replayed from a fixture, never the network."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import ModelInfo
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from typer.testing import CliRunner

from advisor.catalog import community
from advisor.catalog.community import EXPAND, community_repos, fetch_community, hub_repo_of, load_community
from advisor.catalog.store import load_catalog
from advisor.cli.main import app
from advisor.errors import CatalogError, StorageError

httpx2 = pytest.importorskip("httpx2")  # the HTTP client huggingface_hub's errors carry a response of

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "hf_model_info.json").read_text())
RESPONSES, ERRORS = FIXTURE["responses"], FIXTURE["errors"]
CLIENT = f"huggingface_hub {huggingface_hub.__version__}"
ENDPOINT = "https://huggingface.co"
NOW = datetime(2026, 12, 3, 8, 0, 0, tzinfo=timezone.utc)
runner = CliRunner()


def _response(status: int, repo: str, headers: dict[str, str] | None = None):
    req = httpx2.Request("GET", f"{ENDPOINT}/api/models/{repo}")
    return httpx2.Response(status, request=req, headers=headers or {})


class FakeHfApi:
    """Stands in for `huggingface_hub.HfApi`: answers from the fixture, records every call, opens no socket."""

    endpoint = ENDPOINT
    calls: list[tuple[str, list[str] | None, float | None]] = []
    busy: dict[str, int] = {}  # repo -> how many 429 answers to give before the real one
    responses: dict[str, dict] = {}
    interrupt_at: str | None = None

    def __init__(self, *args, **kwargs) -> None:
        pass

    def model_info(self, repo_id, *, expand=None, timeout=None, **kwargs):
        type(self).calls.append((repo_id, expand, timeout))
        if repo_id == self.interrupt_at:
            raise KeyboardInterrupt
        if self.busy.get(repo_id, 0) > 0:
            self.busy[repo_id] -= 1
            raise HfHubHTTPError(
                "429 Too Many Requests", response=_response(429, repo_id, {"Retry-After": "1"})
            )
        if repo_id in self.responses:
            return ModelInfo(**self.responses[repo_id])
        err = ERRORS.get(repo_id, {"status": 404, "headers": {"x-error-code": "RepoNotFound"}})
        if "timeout" in err:
            raise httpx2.ReadTimeout(err["timeout"])
        resp = _response(err["status"], repo_id, err["headers"])
        cls = GatedRepoError if err["headers"]["x-error-code"] == "GatedRepo" else RepositoryNotFoundError
        raise cls(
            f"{err['status']} Client Error.\nRepository Not Found for url: {resp.request.url}", response=resp
        )


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """No socket connects in these tests, and a fresh fake Hub for each."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(FakeHfApi, "busy", {})
    monkeypatch.setattr(FakeHfApi, "responses", dict(RESPONSES))
    monkeypatch.setattr(FakeHfApi, "interrupt_at", None)


@pytest.fixture
def online(monkeypatch):
    """As if huggingface.co were reachable: no offline variables, the probe says yes, HfApi is the fake."""
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ADVISOR_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("advisor.models.hub._probe", lambda *a: True)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)


def _fetch(repos, out, **kw):
    kw.setdefault("sleep", lambda s: None)
    return fetch_community(repos, out, api=FakeHfApi(), offline=False, now=lambda: NOW, **kw)


def test_records_are_dated_with_their_source_and_the_downloads_window(tmp_path):
    out = tmp_path / "community.json"
    s = _fetch(["google-bert/bert-base-uncased", "timm/resnet50.a1_in1k"], out, timeout=7.0)
    assert (s["fetched"], s["already"], s["errors"], s["recorded"]) == (2, 0, {}, 2)
    assert FakeHfApi.calls == [
        ("google-bert/bert-base-uncased", list(EXPAND), 7.0),
        ("timm/resnet50.a1_in1k", list(EXPAND), 7.0),
    ]
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and data["downloads_window"] == "last 30 days"
    assert data["updated_at"] == "2026-12-03T08:00:00Z" and data["errors"] == {}
    assert data["models"]["google-bert/bert-base-uncased"] == {
        "downloads": 51234567,
        "downloads_all_time": 2012345678,
        "likes": 2345,
        "last_modified": "2024-02-19T11:06:12Z",
        "sha": "0000000000000000000000000000000000000001",
        "retrieved_at": "2026-12-03T08:00:00Z",
        "client": CLIENT,
        "endpoint": ENDPOINT,
    }
    rec = load_community(out)["google-bert/bert-base-uncased"]
    assert rec.provenance == f"as of 2026-12-03, source {CLIENT} ({ENDPOINT})"
    assert rec.to_dict()["downloads_window"] == "last 30 days"


def test_unknown_stays_unknown_never_zero(tmp_path):
    out = tmp_path / "community.json"
    _fetch(["timm/resnet50.a1_in1k", "google-bert/bert-large-uncased"], out)
    recs = load_community(out)
    assert recs["timm/resnet50.a1_in1k"].downloads is None  # the answer had no `downloads`: unknown
    assert json.loads(out.read_text())["models"]["timm/resnet50.a1_in1k"]["downloads"] is None
    assert recs["google-bert/bert-large-uncased"].likes == 0  # a real zero stays a zero
    cat = load_catalog()
    assert community.community_value(cat.get("hf:google-bert/bert-base-cased"), "downloads", recs) is None
    assert community.community_value(cat.get("torchvision:resnet50.IMAGENET1K_V2"), "likes", recs) is None
    assert load_community(tmp_path / "absent.json") == {}


def test_per_repo_errors_are_counted_kept_and_asked_again(tmp_path):
    out = tmp_path / "community.json"
    FakeHfApi.busy = {"google-bert/bert-base-uncased": 2}
    waits: list[float] = []
    repos = [
        "google-bert/bert-base-uncased",
        "google-bert/bert-base-cased",
        "google-bert/bert-large-cased",
        "sentence-transformers/all-MiniLM-L6-v2",
    ]
    s = _fetch(repos, out, sleep=waits.append, delay=0.0)
    assert s["fetched"] == 1 and s["errors"] == {"gated": 1, "not_found": 1, "timeout": 1}
    assert waits == [1.0, 1.0]  # the two 429s waited as Retry-After said, then the answer was recorded
    assert [f["error"] for f in s["failed"]] == ["not_found", "gated", "timeout"]
    assert all("\n" not in f["message"] for f in s["failed"])
    errors = json.loads(out.read_text())["errors"]
    assert errors["google-bert/bert-base-cased"]["error"] == "not_found"
    assert errors["google-bert/bert-large-cased"]["retrieved_at"] == "2026-12-03T08:00:00Z"
    FakeHfApi.calls.clear()
    FakeHfApi.responses["google-bert/bert-base-cased"] = {
        **RESPONSES["google-bert/bert-large-uncased"],
        "id": "google-bert/bert-base-cased",
    }  # the repo is back
    again = _fetch(repos, out)
    assert [c[0] for c in FakeHfApi.calls] == repos[
        1:
    ]  # the recorded one is skipped, the failed ones retried
    assert again["already"] == 1 and again["fetched"] == 1 and again["recorded"] == 2
    assert set(json.loads(out.read_text())["errors"]) == set(repos[2:])


def test_an_interrupted_run_keeps_what_it_got_and_resumes(tmp_path):
    out = tmp_path / "community.json"
    repos = ["google-bert/bert-base-uncased", "google-bert/bert-large-uncased", "timm/resnet50.a1_in1k"]
    FakeHfApi.interrupt_at = "timm/resnet50.a1_in1k"
    with pytest.raises(KeyboardInterrupt):
        _fetch(repos, out, checkpoint_every=1)
    assert set(json.loads(out.read_text())["models"]) == set(repos[:2])
    assert [p.name for p in tmp_path.iterdir()] == ["community.json"]  # no temp file left behind
    FakeHfApi.interrupt_at = None
    FakeHfApi.calls.clear()
    s = _fetch(repos, out, limit=5)
    assert [c[0] for c in FakeHfApi.calls] == [repos[2]] and s["already"] == 2 and s["recorded"] == 3


def test_limit_leaves_the_rest_and_refresh_asks_again(tmp_path):
    out = tmp_path / "community.json"
    repos = ["google-bert/bert-base-uncased", "google-bert/bert-large-uncased"]
    s = _fetch(repos, out, limit=1)
    assert (s["fetched"], s["left"], s["recorded"]) == (1, 1, 1)
    FakeHfApi.calls.clear()
    s = _fetch(repos, out, refresh=True)
    assert [c[0] for c in FakeHfApi.calls] == repos and s["already"] == 0 and s["recorded"] == 2


def test_the_write_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "community.json"
    _fetch(["google-bert/bert-base-uncased"], out)
    before = out.read_bytes()

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("advisor.io.os.replace", no_replace)
    with pytest.raises(StorageError):
        _fetch(["google-bert/bert-large-uncased"], out)
    assert out.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["community.json"]


def test_offline_fails_fast_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    out = tmp_path / "community.json"
    r = runner.invoke(app, ["catalog", "community", "--out", str(out)])  # conftest sets HF_HUB_OFFLINE=1
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "offline mode is set (HF_HUB_OFFLINE=1" in r.output and len(r.output.strip().splitlines()) == 2
    assert r.output.startswith("Error: `advisor catalog community` needs the Hugging Face Hub")
    assert not out.exists() and FakeHfApi.calls == []
    with pytest.raises(CatalogError, match="offline was asked for"):
        fetch_community(["google-bert/bert-base-uncased"], out, api=FakeHfApi(), offline=True)


def test_hub_repos_of_catalog_entries():
    cat = load_catalog()
    assert hub_repo_of(cat.get("hf:google-bert/bert-base-uncased")) == "google-bert/bert-base-uncased"
    assert hub_repo_of(cat.get("timm:resnet50.a1_in1k")) == "timm/resnet50.a1_in1k"
    assert hub_repo_of(cat.get("torchvision:resnet50.IMAGENET1K_V2")) is None
    repos = community_repos(cat)
    assert len(repos) == len(set(repos)) and "timm/resnet50.a1_in1k" in repos
    assert all("/" in r for r in community_repos(cat, ("timm",)))


def test_cli_community_then_show_and_list(tmp_path, monkeypatch, online):
    out = tmp_path / "community.json"
    ids = ["hf:google-bert/bert-base-uncased", "hf:google-bert/bert-large-uncased", "timm:resnet50.a1_in1k"]
    r = runner.invoke(
        app, ["catalog", "community", *ids, "--out", str(out), "--delay", "0", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["fetched"], s["recorded"], s["client"], s["endpoint"]) == (3, 3, CLIENT, ENDPOINT)
    monkeypatch.setenv("ADVISOR_CATALOG_COMMUNITY", str(out))
    monkeypatch.setenv("COLUMNS", "300")
    shown = runner.invoke(app, ["catalog", "show", "hf:google-bert/bert-base-uncased"])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.stdout.splitlines() if "downloads (30 days)" in x)
    rec = load_community(out)["google-bert/bert-base-uncased"]
    assert "51,234,567" in line and rec.provenance in line and rec.provenance.startswith("as of 20")
    assert "last modified" in shown.stdout and "likes" in shown.stdout
    js = json.loads(runner.invoke(app, ["catalog", "show", "timm:resnet50.a1_in1k", "-f", "json"]).stdout)
    assert js["community"]["downloads"] is None and js["community"]["likes"] == 42
    assert (
        js["community"]["downloads_window"] == "last 30 days"
        and "source huggingface_hub" in js["community"]["provenance"]
    )
    missing = runner.invoke(app, ["catalog", "show", "hf:google-bert/bert-base-cased"])
    assert "unknown" in next(x for x in missing.stdout.splitlines() if "downloads" in x)
    listed = json.loads(
        runner.invoke(
            app, ["catalog", "list", "--family", "bert", "--sort", "downloads", "--desc", "-f", "json"]
        ).stdout
    )
    order = [e["id"] for e in listed["entries"]]
    assert order[:2] == ["hf:google-bert/bert-base-uncased", "hf:google-bert/bert-large-uncased"]
    assert all(e["community"] is None for e in listed["entries"][2:])  # unknown sorts last, as null
    table = runner.invoke(
        app, ["catalog", "list", "--family", "bert", "--sort", "likes", "--desc", "--limit", "2"]
    )
    assert "downloads 30d" in table.stdout and "2,345" in table.stdout


def test_cli_refuses_an_entry_not_on_the_hub(tmp_path, online):
    r = runner.invoke(
        app, ["catalog", "community", "torchvision:resnet50.IMAGENET1K_V2", "--out", str(tmp_path / "c.json")]
    )
    assert r.exit_code == 2 and "not in a Hugging Face Hub repo" in r.output and "Traceback" not in r.output
    assert FakeHfApi.calls == []


def test_a_broken_community_file_is_one_line_naming_it(tmp_path, monkeypatch):
    bad = tmp_path / "community.json"
    bad.write_text("{not json")
    monkeypatch.setenv("ADVISOR_CATALOG_COMMUNITY", str(bad))
    r = runner.invoke(app, ["catalog", "show", "hf:google-bert/bert-base-uncased"])
    assert r.exit_code == 1 and str(bad) in r.output and "not valid JSON" in r.output
    assert "Traceback" not in r.output
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(
        CatalogError, match="not a community file"
    ):  # someone else's JSON is never overwritten
        _fetch(["google-bert/bert-base-uncased"], other)
    assert other.read_text() == '{"a": 1}'
    monkeypatch.setenv("ADVISOR_CATALOG_COMMUNITY", str(tmp_path / "nope.json"))
    r = runner.invoke(app, ["catalog", "list", "--sort", "likes", "--limit", "1"])
    assert r.exit_code == 1 and "ADVISOR_CATALOG_COMMUNITY" in r.output


def test_python_api_reads_the_records(tmp_path, monkeypatch):
    import advisor

    out = tmp_path / "community.json"
    _fetch(["google-bert/bert-base-uncased"], out)
    monkeypatch.setenv("ADVISOR_CATALOG_COMMUNITY", str(out))
    rec = advisor.api.catalog_community("hf:google-bert/bert-base-uncased")
    assert rec is not None and rec.downloads == 51234567 and rec.as_of == "2026-12-03"
    assert advisor.api.catalog_community("hf:google-bert/bert-base-cased") is None
    top = advisor.catalog(family="bert", sort="downloads", descending=True)
    assert top[0].id == "hf:google-bert/bert-base-uncased"


@pytest.fixture
def hub_transport(monkeypatch):
    """huggingface_hub's own HTTP client, its transport replaced by the recorded answers (no socket, no hook)."""
    from huggingface_hub.utils import _http

    seen: list = []

    def answer(request):
        seen.append(request)
        repo = request.url.path.removeprefix("/api/models/")
        if repo in RESPONSES:
            return httpx2.Response(200, json=RESPONSES[repo], request=request)
        err = ERRORS[repo]
        if "timeout" in err:
            raise httpx2.ReadTimeout(err["timeout"], request=request)
        body = {"error": err["headers"]["x-error-message"]}
        return httpx2.Response(err["status"], json=body, headers=err["headers"], request=request)

    original = _http._GLOBAL_CLIENT_FACTORY
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(answer)))
    yield seen
    huggingface_hub.set_client_factory(original)


def test_the_real_client_parses_the_recorded_answers(tmp_path, hub_transport):
    out = tmp_path / "community.json"
    repos = [*RESPONSES, *ERRORS]
    _fetch(repos, out, delay=0.0)  # the fake, for comparison
    s = fetch_community(
        repos,
        tmp_path / "real.json",
        api=huggingface_hub.HfApi(token=False),
        offline=False,
        now=lambda: NOW,
        sleep=lambda t: None,
    )
    assert s["fetched"] == 3 and s["errors"] == {"gated": 1, "not_found": 1, "timeout": 1}
    req = hub_transport[0]
    assert req.url.path == "/api/models/google-bert/bert-base-uncased"
    assert sorted(req.url.params.get_list("expand")) == sorted(EXPAND)
    real = json.loads((tmp_path / "real.json").read_text())
    assert real["models"] == json.loads(out.read_text())["models"]  # the fake and the real client agree
    assert real["models"]["google-bert/bert-base-uncased"]["last_modified"] == "2024-02-19T11:06:12Z"
