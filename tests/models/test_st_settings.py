"""The hf: text loader follows a repo's sentence-transformers settings (pooling, Normalize, max_seq_length, default
prompt), explicit id options win, and the settings used are recorded and part of the feature signature."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.models.st_settings import DEFAULT_SOURCE, read_st_settings, resolve

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "query",
    ":",
    "hello",
    "world",
    "guitar",
    "man",
    "the",
    "a",
]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("bert")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)})
    cfg = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _st_files(d, *, pooling: str, normalize: bool, max_len: int | None = None, prompt: str | None = None):
    mods = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        mods.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (d / "modules.json").write_text(json.dumps(mods))
    (d / "1_Pooling").mkdir(exist_ok=True)
    keys = {
        "cls": "pooling_mode_cls_token",
        "mean": "pooling_mode_mean_tokens",
        "max": "pooling_mode_max_tokens",
    }
    pool = dict.fromkeys(keys.values(), False) | {
        keys.get(pooling, pooling): True,
        "word_embedding_dimension": 32,
    }
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    if max_len:
        (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len}))
    if prompt is not None:
        cfg = {"prompts": {"query": prompt, "document": ""}, "default_prompt_name": "query"}
        (d / "config_sentence_transformers.json").write_text(json.dumps(cfg))


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _load(path, options: str = ""):
    from advisor.models import load_model

    return load_model(f"hf:{path}{options}", offline=True)


def _hidden(path, texts):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    b = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**b).last_hidden_state.numpy(), b["attention_mask"].numpy()


def _features(loaded, texts):
    import torch

    with torch.inference_mode():
        return loaded.forward(loaded.preprocess(texts)).features.numpy()


TEXTS = ["hello world", "the guitar man a hello world the"]


def test_without_a_config_the_default_is_mean_pooling(bert_dir):
    st = read_st_settings(str(bert_dir))
    assert (st.pooling, st.normalize, st.prompt, st.source) == ("mean", False, None, DEFAULT_SOURCE)
    loaded = _load(bert_dir)
    h, m = _hidden(bert_dir, TEXTS)
    want = (h * m[..., None]).sum(1) / m.sum(1, keepdims=True)
    np.testing.assert_allclose(_features(loaded, TEXTS), want, atol=1e-5)
    assert "prompt" not in loaded.preprocess_signature()  # feature keys of prompt-less models are unchanged
    assert loaded.info["loader_settings"]["source"] == DEFAULT_SOURCE


def test_cls_pooling_and_normalize_from_the_repo(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="cls", normalize=True, max_len=16)
    loaded = _load(d)
    assert (
        loaded.preprocess_signature()["pooling"] == "cls"
        and loaded.preprocess_signature()["normalize"] is True
    )
    assert loaded.preprocess_signature()["max_length"] == 16
    h, _m = _hidden(d, TEXTS)
    want = h[:, 0] / np.linalg.norm(h[:, 0], axis=1, keepdims=True)
    np.testing.assert_allclose(_features(loaded, TEXTS), want, atol=1e-5)
    assert "sentence-transformers" in loaded.info["loader_settings"]["source"]


def test_max_pooling_ignores_padding(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="max", normalize=False)
    h, m = _hidden(d, TEXTS)
    want = np.where(m[..., None] > 0, h, -np.inf).max(1)
    np.testing.assert_allclose(_features(_load(d), TEXTS), want, atol=1e-5)


def test_default_prompt_is_prepended_and_changes_the_signature(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="mean", normalize=False, prompt="query: ")
    loaded = _load(d)
    ids, _mask = loaded.preprocess(["hello"])
    assert ids[0].tolist() == [2, VOCAB.index("query"), VOCAB.index(":"), VOCAB.index("hello"), 3]
    assert loaded.preprocess_signature()["prompt"] == "query: "
    assert loaded.info["loader_settings"]["prompts_available"] == ["document", "query"]
    # the explicit option wins, and is said so
    plain = _load(d, "?prompt=")
    assert plain.preprocess(["hello"])[0][0].tolist() == [2, VOCAB.index("hello"), 3]
    assert "overridden by the id's options (prompt)" in plain.info["loader_settings"]["source"]


def test_unsupported_and_malformed_configs_fall_back_with_a_note(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="pooling_mode_weightedmean_tokens", normalize=False)
    st = read_st_settings(str(d))
    assert (
        st.pooling == "mean" and "weightedmean" in st.notes[0] and "differ from the published" in st.notes[0]
    )
    (d / "modules.json").write_text("{not json")
    st = read_st_settings(str(d))
    assert st.pooling == "mean" and "modules.json unreadable" in st.notes[0]


def test_explicit_options_win_and_bad_pooling_is_refused(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="cls", normalize=True)
    st = resolve(read_st_settings(str(d)), {"pooling": "mean", "normalize": "0"})
    assert (st.pooling, st.normalize) == ("mean", False)
    with pytest.raises(UsageError, match="unknown pooling"):
        _load(d, "?pooling=median")


def test_a_classification_prompt_wins_over_the_default_as_in_mteb(bert_dir, tmp_path):
    """MTEB's sentence-transformers wrapper picks a prompt named after the task type ('Classification') before the
    query prompt; the advisor's text task is classification, so it does the same."""
    d = _copy(bert_dir, tmp_path / "st")
    _st_files(d, pooling="mean", normalize=False, prompt="query: ")
    cfg = {"prompts": {"query": "query: ", "Classification": "hello: "}, "default_prompt_name": "query"}
    (d / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    st = read_st_settings(str(d))
    assert st.prompt == "hello: "
    assert any("'Classification' prompt is used" in n for n in st.notes)
    loaded = _load(d)
    assert loaded.preprocess(["the"])[0][0].tolist() == [
        2,
        VOCAB.index("hello"),
        VOCAB.index(":"),
        VOCAB.index("the"),
        3,
    ]
    assert loaded.preprocess_signature()["prompt"] == "hello: "
    # a lower-case 'classification' prompt is not MTEB's task-type name: the default stays
    cfg["prompts"] = {"query": "query: ", "classification": "hello: "}
    (d / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    assert read_st_settings(str(d)).prompt == "query: "
