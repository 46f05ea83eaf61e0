"""Open ASR Leaderboard tables -> speech-recognition entries and WER/RTFx figures, on tiny tables in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.catalog.sources_asr import ASR_LONG, ASR_SHORT, RTFX_PROTOCOL, asr_entries, asr_metrics

SHORT = (
    "model,Avg. WER,RTFx,Model size (B),License,AMI WER,LS Clean WER\n"
    "org/open-asr,5.5,280.02,2,Open,8.44,1.42\n"
    "vendor/closed,5.0,-1,-1,Proprietary,9.0,1.0\n"
    "openai/whisper-tiny,12.0,300,0.039,Open,20,5\n"
)
LONG = "model_id,Average,RTFx,Model size (B),earnings21,Avg (without CORAAL)\norg/open-asr,7.0,-1,,6.35,5.9\n"


def _tables(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "SOURCE.md").write_text("Repository x at commit `d1e99b25524814332d6868a5645e568670834cfb`\n")
    (tmp_path / ASR_SHORT).write_text(SHORT)
    (tmp_path / ASR_LONG).write_text(LONG)
    return {ASR_SHORT: tmp_path / ASR_SHORT, ASR_LONG: tmp_path / ASR_LONG}


def test_open_models_only_with_wer_and_a100_rtfx(tmp_path: Path) -> None:
    entries = asr_entries(_tables(tmp_path))
    assert [e.id for e in entries] == ["hf:openai/whisper-tiny", "hf:org/open-asr"]
    e = entries[1]
    assert (e.modality, e.task, e.n_params) == ("audio", "speech-recognition", 2_000_000_000)
    assert e.n_params_source.startswith("published:") and "rounded" in e.n_params_source
    assert e.wer == pytest.approx(5.5)
    rtfx = [m for m in e.metrics if m.name == "rtfx"]
    assert [m.value for m in rtfx] == [pytest.approx(280.02)]  # long-form's -1 is unknown, not a figure
    assert rtfx[0].protocol == RTFX_PROTOCOL and "A100" in rtfx[0].protocol
    assert e.metric("ami (open-asr-en-shortform)", "wer") == pytest.approx(8.44)
    assert e.metric("open-asr-en-longform", "wer") == pytest.approx(7.0)
    assert e.metrics[0].source == "huggingface/open_asr_leaderboard@d1e99b2 scripts/data/en_shortform.csv"
    assert not e.probeable and entries[0].probeable  # whisper's encoder is loadable, an unknown family is not
    assert e.license is None and e.license_class == "unknown"  # "Open" names no license


def test_metrics_of_every_table(tmp_path: Path) -> None:
    m = asr_metrics(_tables(tmp_path))
    assert "vendor/closed" in m  # figures are kept for merging even where no entry is made
    assert {x.dataset for x in m["org/open-asr"]} >= {"open-asr-en-shortform", "open-asr-en-longform"}
