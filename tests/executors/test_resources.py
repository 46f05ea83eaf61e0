"""`candidate_resources`: GPU fraction by size, CPUs by modality, memory from the weights, overrides win."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from advisor.executors.resources import BASE_MEMORY, UNKNOWN_PARAMS, candidate_resources


def _entry(params, modality="image"):
    return SimpleNamespace(n_params=params, modality=modality)


@pytest.mark.parametrize(
    ("params", "gpus"), [(5e6, 0.25), (30e6, 0.25), (86e6, 0.5), (150e6, 0.5), (300e6, 1.0), (None, 1.0)]
)
def test_gpu_fraction_follows_the_size_rule_on_a_gpu_cluster(params, gpus):
    r = candidate_resources(_entry(params), cluster_has_gpu=True)
    assert r.num_gpus == gpus
    assert r.ray_options()["num_gpus"] == gpus


def test_no_gpu_cluster_asks_for_none_and_overrides_win():
    assert candidate_resources(_entry(300e6), cluster_has_gpu=False).num_gpus == 0.0
    r = candidate_resources(_entry(5e6), cluster_has_gpu=True, gpus_per_candidate=1, cpus_per_candidate=4)
    assert (r.num_gpus, r.num_cpus) == (1.0, 4.0)
    assert "given" in r.why


def test_cpus_by_modality_and_memory_from_the_weights():
    text = candidate_resources(_entry(22e6, "text"), cluster_has_gpu=False)
    audio = candidate_resources(_entry(22e6, "audio"), cluster_has_gpu=False)
    assert (text.num_cpus, audio.num_cpus) == (1.0, 2.0)
    assert text.memory == BASE_MEMORY + 12 * 22_000_000
    unknown = candidate_resources(None, modality="text", cluster_has_gpu=False)
    assert unknown.num_cpus == 1.0 and unknown.memory == BASE_MEMORY + 12 * UNKNOWN_PARAMS
    assert "size unknown" in unknown.why
