"""recommend's latency: unreliable figures flagged in JSON/CSV/table, no "faster" claim on them, limits use p90."""

from __future__ import annotations

import csv
import io
import json

from advisor.recommend.results import CandidateResult, RecommendResults
from advisor.recommend.run import RunConfig, _bench, apply_resource_limits, build_reasons
from advisor.report.render import latency_cell, render
from tests.bench.test_bench_reliability import FakeBench


def _cand(mid: str, acc: float, p50: float, *, reliable: bool = True, iqr: float = 0.5) -> CandidateResult:
    return CandidateResult(
        model_id=mid,
        status="ranked",
        probe={"accuracy": acc, "accuracy_ci": [acc - 0.04, acc + 0.04]},
        bench={
            "batch_size": 1,
            "latency_ms_p50": p50,
            "latency_ms_p90": p50 * 2.5,
            "latency_ms_iqr": iqr,
            "peak_memory_mb": 50.0,
            "reliable": reliable,
            "unreliable_reason": None if reliable else "machine busy: 1-min load average 5.0 > 2 usable CPUs",
        },
        tie_group=1,
        pareto=True,
    )


def test_busy_figures_flagged_in_json_and_remeasured(tmp_path):
    # Busy on every call: the rounds cannot make it reliable, so the figure is kept but flagged with its reason.
    fake = FakeBench({"m:a": [0.05] * 4}, loads=[6.0])
    cfg = RunConfig(data="x", bench_min_time_s=0.0, bench_max_time_s=0.1)
    out = _bench(["m:a"], cfg, bench_fn=fake, store_path=tmp_path / "b.sqlite")
    b = out["m:a"]
    assert b["reliable"] is False and "machine busy" in b["unreliable_reason"]
    assert b["loadavg_1m"] == 6.0 and b["threads"] == 1 and b["remeasure_rounds"] == 3
    assert json.loads(json.dumps(b))["reliable"] is False


def test_no_faster_claim_on_unreliable_figure():
    best = _cand("m:lite0", 0.81, 900.0, reliable=False)
    other = _cand("m:lite2", 0.80, 400.0)
    build_reasons([best, other], "CPU")
    assert "faster" not in other.reasons[0]
    assert "unreliable" in best.reasons[0]
    # reliable and far apart: the claim is made; inside the spread (IQR bands overlap): it is not
    best2, other2 = _cand("m:a", 0.81, 30.0), _cand("m:b", 0.80, 20.0)
    build_reasons([best2, other2], "CPU")
    assert "and faster" in other2.reasons[0]
    best3, other3 = _cand("m:a", 0.81, 30.0, iqr=8.0), _cand("m:b", 0.80, 25.0, iqr=8.0)
    build_reasons([best3, other3], "CPU")
    assert "faster" not in other3.reasons[0]


def test_fastest_on_the_front_only_beyond_the_spread():
    # Seen in a run: a 64.5 % model at 3.74 ms called "fastest on the Pareto front" beside an 80.0 % one at 3.80 ms
    best = _cand("m:a", 0.80, 6.7, iqr=0.2)
    near = _cand("m:b", 0.80, 3.80, iqr=0.2)
    worse = _cand("m:c", 0.645, 3.74, iqr=0.2)
    best.tie_group = near.tie_group = 1
    worse.tie_group = 2
    build_reasons([best, near, worse], "CPU")
    assert "fastest" not in worse.reasons[0]
    assert worse.reasons[0].startswith("on the accuracy/latency Pareto front")
    # clearly faster than every other point on the front: the claim is made
    far = _cand("m:c", 0.645, 1.0, iqr=0.2)
    far.tie_group = 2
    build_reasons([best, near, far], "CPU")
    assert far.reasons[0].startswith("fastest on the accuracy/latency Pareto front")


def test_max_latency_uses_upper_end_for_unreliable_and_notes_it():
    shaky = _cand("m:shaky", 0.8, 150.0, reliable=False)  # p90 375 ms
    solid = _cand("m:solid", 0.8, 150.0)
    notes: list[str] = []
    apply_resource_limits([shaky, solid], RunConfig(data="x", max_latency_ms=300.0), notes)
    assert shaky.status == "excluded" and "p90" in shaky.reasons[0] and "375.0 ms" in shaky.reasons[0]
    assert solid.status == "ranked"
    assert any("upper end" in n and "m:shaky" in n for n in notes)


def test_unreliable_marked_in_table_csv_and_html():
    c = _cand("m:a", 0.8, 12.0, reliable=False)
    c.rank = 1
    assert latency_cell(c).endswith("?")
    r = RecommendResults(config={"latency_batch_size": 1}, dataset={"name": "d"}, candidates=[c])
    rows = list(csv.DictReader(io.StringIO(render(r, "csv"))))
    assert rows[0]["latency_reliable"] == "False" and "busy" in rows[0]["latency_unreliable_reason"]
    assert "12.0 ?" in render(r, "html")
