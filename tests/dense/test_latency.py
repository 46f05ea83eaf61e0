"""Dense latency records: what was timed, at which size, percentiles, memory, and the reliability verdict."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.dense.latency import measure_dense_latency
from advisor.dense.types import Detections


class _CountingModel:
    """A stand-in detector that records the image sizes it was given."""

    model_id = "test:counting"
    task = "detection"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def predict(self, images):
        self.sizes += [im.size for im in images]
        return [Detections.empty() for _ in images]


def test_every_call_is_one_image_at_the_working_size_and_warmup_is_not_timed():
    m = _CountingModel()
    rec = measure_dense_latency(m, (40, 30), repeats=5, warmup=3, max_time=2.0)
    assert set(m.sizes) == {(40, 30)}
    assert len(m.sizes) == rec["n"] + 3 and rec["n"] >= 5 and rec["warmup"] == 3
    assert rec["model_id"] == "test:counting" and rec["size"] == [40, 30]


def test_a_real_model_record_has_percentiles_memory_and_a_verdict():
    from advisor.dense.models import load_dense_model

    m = load_dense_model("torchvision:lraspp_mobilenet_v3_large", pretrained=False)
    rec = measure_dense_latency(m, (64, 48), repeats=3, warmup=1, max_time=5.0)
    assert rec["p50_ms"] > 0 and rec["p90_ms"] >= rec["p50_ms"] and rec["size"] == [64, 48]
    assert "decoding and NMS" in rec["what"] and isinstance(rec["unreliable"], bool)
    assert rec["rss_delta_mb"] >= 0 and "RSS" in rec["rss_method"]
    assert isinstance(rec["reasons"], list) and (rec["unreliable"] == bool(rec["reasons"]))


def test_a_slow_model_is_timed_at_least_repeats_times(monkeypatch):
    import time

    class Slow(_CountingModel):
        def predict(self, images):
            time.sleep(0.01)
            return super().predict(images)

    m = Slow()
    rec = measure_dense_latency(m, (8, 8), repeats=4, warmup=0, max_time=0.5)
    assert rec["n"] >= 4 and rec["p50_ms"] == pytest.approx(10.0, rel=0.9) and np.isfinite(rec["iqr_ms"])


def test_the_fastest_architecture_is_claimed_only_on_reliable_separated_figures():
    # Seen on BCCD: "fastest architecture timed here: ssdlite ... 52.0 ms" while the table marked 52.0 unreliable
    from advisor.dense.results import DenseCandidate, Role
    from advisor.dense.verdict import _arch_speed_line

    def arch(mid: str, p50: float, iqr: float = 1.0, unreliable: bool = False) -> DenseCandidate:
        lat = {"p50_ms": p50, "iqr_ms": iqr, "unreliable": unreliable}
        return DenseCandidate(mid, Role.ARCH, latency=lat)

    line = _arch_speed_line([arch("tv:ssd", 52.0, unreliable=True), arch("tv:frcnn", 68.4)])
    assert line is not None and line.startswith(
        "lowest p50 of the architectures timed here: tv:ssd at p50 52.0"
    )
    assert line.endswith("no speed claim: unreliable figures (tv:ssd: see the p50 column)")
    line = _arch_speed_line([arch("tv:ssd", 52.0, iqr=8.0), arch("tv:frcnn", 56.0, iqr=8.0)])
    assert line is not None and line.endswith("no speed claim: within the measurement spread of tv:frcnn")
    line = _arch_speed_line([arch("tv:ssd", 52.0), arch("tv:frcnn", 68.4)])
    assert (
        line
        == "fastest architecture timed here: tv:ssd at p50 52.0 ms per image (pre/post-processing included)"
    )
    assert _arch_speed_line([DenseCandidate("pkg:b", Role.BACKBONE, latency={"p50_ms": 3.0})]) is None
