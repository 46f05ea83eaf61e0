"""Model sources behind LoadedModel: timm, torchvision, Hugging Face (tiny local models), ids and errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.errors import CatalogEntryNotFound, ModelLoadError, UsageError, WeightsUnavailableOffline
from advisor.models import LoadedModel, load_model, parse_model_id, resolve_device

torch.set_num_threads(1)


def _images(n: int = 3, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)]


def _check_common(m: LoadedModel, batch: tuple) -> None:
    with torch.inference_mode():
        out = m.forward(batch)
    assert out.features.shape == (batch[0].shape[0], m.feature_dim)
    assert out.features.dtype == torch.float32
    assert torch.isfinite(out.features).all()
    json.dumps(m.preprocess_signature())  # JSON-able for cache keys
    assert m.preprocess_signature()["model_id"] == m.model_id
    if m.module is not None:
        with torch.inference_mode():
            direct = m.module(*batch)
        torch.testing.assert_close(direct.float(), out.features)


def test_parse_model_id():
    assert parse_model_id("timm:resnet18.a1_in1k") == ("timm", "resnet18.a1_in1k", {})
    assert parse_model_id("hf:org/name@main") == ("hf", "org/name@main", {})
    assert parse_model_id("/x/model.onnx?modality=text&max_length=64") == (
        "local",
        "/x/model.onnx",
        {"modality": "text", "max_length": "64"},
    )
    assert parse_model_id("local:/a/w.safetensors?arch=timm:resnet18")[2] == {"arch": "timm:resnet18"}
    with pytest.raises(UsageError):
        parse_model_id("resnet18")


def test_unknown_source_and_packaged_name_suggest():
    with pytest.raises(CatalogEntryNotFound, match="timm"):
        load_model("timn:resnet18")
    with pytest.raises(CatalogEntryNotFound) as e:
        load_model("pkg:efficientnet_lite9")
    assert "pkg:efficientnet_lite" in str(e.value)
    with pytest.raises(ModelLoadError, match="resnet18"):
        load_model("timm:resnet18x", pretrained=False)


def test_timm_test_vit_features_logits_and_preprocessing():
    m = load_model("timm:test_vit", pretrained=False)
    assert m.modality == "image" and m.runtime == "torch" and not m.pretrained
    assert m.num_source_classes == 1000 and len(m.source_classes) == 1000
    batch = m.preprocess(_images())
    assert batch[0].shape[1:] == (3, 160, 160)  # from test_vit's pretrained_cfg, not hard-coded
    _check_common(m, batch)
    with torch.inference_mode():
        full = m.module.model(batch[0])
        out = m.forward(batch)
    torch.testing.assert_close(out.logits, full)  # head(pre-logits features) == the model's own logits
    assert len(m.blocks()) == len(m.module.model.blocks)
    ex = m.example_batch(2)
    assert ex[0].shape == (2, 3, 160, 160)


def test_timm_resnet_blocks_and_example_override():
    m = load_model("timm:test_resnet", pretrained=False)
    assert m.feature_dim == m.module.model.num_features
    _check_common(m, m.example_batch(2, input_size=64))
    assert len(m.blocks()) == 4


def test_torchvision_classifier_split():
    m = load_model("torchvision:mobilenet_v3_small.IMAGENET1K_V1", pretrained=False)
    assert m.feature_dim == 1024 and m.num_source_classes == 1000
    assert m.source_classes[0] == "tench"
    batch = m.preprocess(_images(2, 64))
    assert batch[0].shape == (2, 3, 224, 224)  # weights.transforms() crop
    _check_common(m, batch)
    assert m.blocks(), "mobilenet features blocks"
    with pytest.raises(ModelLoadError, match="available"):
        load_model("torchvision:resnet18.NOPE", pretrained=False)


def _tiny_bert_dir(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "a", "b", "guitar", "man", "the"]
    # transformers 5 ignores `vocab_file=` here (every word becomes [UNK]); pass the vocabulary itself.
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = BertModel(cfg).eval()
    out = tmp_path / "bert"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, model, tok


def test_hf_text_local_dir_mean_pooling(tmp_path):
    d, ref, tok = _tiny_bert_dir(tmp_path)
    m = load_model(f"hf:{d}")
    assert m.modality == "text" and m.feature_dim == 32
    assert len(m.blocks()) == 2
    texts = ["hello world", "the man a b guitar hello world the"]
    batch = m.preprocess(texts)
    _check_common(m, batch)
    assert tok.unk_token_id not in tok(texts[1])["input_ids"]  # the words are in the vocabulary, not [UNK]
    with torch.inference_mode():
        feats = m.forward(batch).features
        alone = m.forward(m.preprocess(texts[:1])).features
        b = tok(texts[:1], return_tensors="pt")
        manual = ref(**b).last_hidden_state.mean(1)
    # padding in a batch does not change a sentence's feature (mask-aware mean pooling)
    torch.testing.assert_close(feats[:1], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, manual, atol=1e-5, rtol=1e-4)
    # local: works the same for a save_pretrained folder
    assert load_model(f"local:{d}").feature_dim == 32


def test_hf_image_and_audio_local_dirs(tmp_path):
    from transformers import ViTConfig, ViTModel, Wav2Vec2Config, Wav2Vec2Model

    vit = ViTModel(
        ViTConfig(
            image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=30,
        )
    )  # fmt: skip
    vit.save_pretrained(tmp_path / "vit")
    m = load_model(f"hf:{tmp_path / 'vit'}")
    assert m.modality == "image" and m.feature_dim == 24
    _check_common(m, m.preprocess(_images(2)))

    w2v = Wav2Vec2Model(
        Wav2Vec2Config(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20,
            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
        )
    )  # fmt: skip
    w2v.save_pretrained(tmp_path / "w2v")
    a = load_model(f"local:{tmp_path / 'w2v'}")
    assert a.modality == "audio" and a.sample_rate == 16000 and a.feature_dim == 16
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(4000).astype("float32"), rng.standard_normal(2400).astype("float32")]
    _check_common(a, a.preprocess(waves))
    assert a.example_batch(2, clip_seconds=0.5)[0].shape == (2, 8000)


def test_hf_offline_uncached_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableOffline) as e:
        load_model("hf:some-org/surely-uncached-model-xyz")
    assert time.perf_counter() - t0 < 5.0
    msg = str(e.value)
    assert "hf:some-org/surely-uncached-model-xyz" in msg
    assert "huggingface-cli download some-org/surely-uncached-model-xyz" in msg and "HF_HOME" in msg


def test_timm_and_torchvision_offline_uncached(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torchhome"))
    monkeypatch.setattr("advisor.models.timm_source.hf_cached_file", lambda *a, **k: None)
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableOffline, match="timm:resnet18.a1_in1k"):
        load_model("timm:resnet18.a1_in1k", offline=True)
    with pytest.raises(WeightsUnavailableOffline, match="torchvision:resnet18"):
        load_model("torchvision:resnet18.IMAGENET1K_V1", offline=True)
    assert time.perf_counter() - t0 < 5.0


def test_to_device_and_resolve():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError):
        resolve_device("tpu")
    m = load_model("timm:test_vit", pretrained=False).to("cpu", torch.bfloat16)
    with torch.inference_mode():
        out = m.forward(m.example_batch(1))
    assert out.features.dtype == torch.float32  # outputs are always float32


def test_hf_random_init_from_catalog_spec_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = load_model("hf:sentence-transformers/all-MiniLM-L6-v2", pretrained=False)
    assert not m.pretrained and m.feature_dim == 384 and len(m.blocks()) == 6
    with torch.inference_mode():
        assert m.forward(m.example_batch(2, seq_len=8)).features.shape == (2, 384)
    with pytest.raises(ModelLoadError, match="tokenizer"):
        m.preprocess(["no tokenizer offline"])


def test_offline_detection_env_and_probe(monkeypatch):
    from advisor.models import hub

    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ADVISOR_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    assert hub.is_offline(True) is True and hub.is_offline(False) is False
    monkeypatch.setenv("ADVISOR_OFFLINE", "1")
    assert hub.is_offline() is True
    monkeypatch.delenv("ADVISOR_OFFLINE")
    monkeypatch.setattr(hub, "HUB_HOST", "127.0.0.1")  # nothing listens on 443 here: refused at once
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.5)
    t0 = time.perf_counter()
    assert hub.is_offline() is True
    assert time.perf_counter() - t0 < 2.5


def test_fast_batched_image_preprocessing_is_exact():
    from timm.data import create_transform

    from advisor.models.timm_source import fast_image_preprocess

    tf = create_transform(input_size=(3, 40, 40), interpolation="bicubic", crop_pct=0.9, mean=(0.4, 0.5, 0.6))
    imgs = _images(4, 57)
    fast = fast_image_preprocess(tf)(imgs)[0]
    slow = torch.stack([tf(im) for im in imgs])
    assert fast.is_contiguous() and fast.shape == (4, 3, 40, 40)
    assert torch.equal(fast, slow)


def test_hf_whisper_encoder_local_dir(tmp_path):
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=20, decoder_ffn_dim=20, num_mel_bins=80, vocab_size=100, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1,
    )  # fmt: skip
    WhisperModel(cfg).save_pretrained(tmp_path / "whisper")
    m = load_model(f"hf:{tmp_path / 'whisper'}")
    assert m.modality == "audio" and m.feature_dim == 16 and len(m.blocks()) == 1
    rng = np.random.default_rng(0)
    batch = m.preprocess([rng.standard_normal(16000).astype("float32") * 0.1, np.zeros(8000, "float32")])
    assert batch[0].shape == (2, 80, 3000) and batch[1].tolist() == [100, 50]  # valid mel frames per clip
    _check_common(m, batch)
