"""GMACs: exact counts on small modules, the attention handle, uncounted operators, published figures."""

from __future__ import annotations

import pytest
import torch

from advisor.bench.flops import count_gmacs, within
from advisor.bench.published import describe_file, published_gmacs, published_throughput


class Attn(torch.nn.Module):
    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_conv_and_linear_are_counted_exactly_per_sample():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False).eval()
    r = count_gmacs(conv, (torch.randn(2, 3, 16, 16),))
    assert r.gmacs * 1e9 == pytest.approx(8 * 16 * 16 * 3 * 3 * 3)  # per sample, batch of 2
    assert r.gmacs_torch * 1e9 == pytest.approx(8 * 16 * 16 * 3 * 3 * 3)
    assert r.torch_method == "meta"
    assert r.batch_size == 2
    lin = torch.nn.Linear(10, 20).eval()
    r = count_gmacs(lin, (torch.randn(4, 10),))
    assert r.gmacs * 1e9 == pytest.approx(200)
    assert "GMACs" in r.unit and r.rel_diff == pytest.approx(0.0)


def test_scaled_dot_product_attention_is_added_to_fvcore():
    q = torch.randn(1, 2, 5, 8)
    k = torch.randn(1, 2, 7, 8)
    v = torch.randn(1, 2, 7, 4)
    r = count_gmacs(Attn(), (q, k, v))
    expected = 2 * 5 * 7 * (8 + 4)  # heads x L x S x (E + Ev)
    assert r.gmacs * 1e9 == pytest.approx(expected)
    assert r.gmacs_torch * 1e9 == pytest.approx(expected)
    assert "aten::scaled_dot_product_attention" not in r.uncounted_ops


def test_multihead_attention_fast_path_is_counted():
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    r = count_gmacs(M().eval(), (torch.randn(1, 6, 16),))
    L, D = 6, 16
    expected = 4 * L * D * D + 2 * L * L * D  # q/k/v/out projections + attention
    assert r.gmacs * 1e9 == pytest.approx(expected)
    assert r.gmacs_torch * 1e9 == pytest.approx(expected)


def test_uncounted_matmul_class_operators_are_listed_not_dropped():
    lstm = torch.nn.LSTM(8, 8, batch_first=True).eval()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[0]

    r = count_gmacs(M().eval(), (torch.randn(1, 3, 8),))
    assert any("lstm" in op for op in r.significant_uncounted)
    assert any("undercount" in n for n in r.notes)


def test_test_vit_matches_timm_published_gmacs():
    import timm

    m = timm.create_model("test_vit", pretrained=False).eval()
    r = count_gmacs(m, (torch.randn(1, 3, 160, 160),))
    pub = published_gmacs("timm:test_vit", 160)
    assert pub and pub[0]["column"] == "infer_gmacs"
    assert within(r.gmacs, pub[0]["gmacs"], 0.01, decimals=2)  # the table rounds to 2 decimals
    assert r.gmacs == pytest.approx(r.gmacs_torch, rel=0.05)
    assert not r.significant_uncounted


def test_mobilenet_v3_small_matches_torchvision_published_gmacs():
    import torchvision

    m = torchvision.models.get_model("mobilenet_v3_small", weights=None).eval()
    r = count_gmacs(m, (torch.randn(1, 3, 224, 224),))
    pub = published_gmacs("torchvision:mobilenet_v3_small", 224)
    assert pub[0]["gmacs"] == pytest.approx(0.057) and pub[0]["compare_with"] == "gmacs_torch"
    assert abs(r.gmacs_torch - pub[0]["gmacs"]) / pub[0]["gmacs"] < 0.01


def test_published_tables_and_file_names():
    d = describe_file("benchmark-infer-amp-nchw-pt291-cu130-5090-dynamo.csv")
    assert d["device_class"] == "cuda" and d["precision"] == "amp" and d["compiled"] is True
    rows = published_throughput("timm:resnet50.a1_in1k", "cpu", 224)
    assert rows and all(r["device_class"] == "cpu" and r["img_size"] == 224 for r in rows)
    assert published_throughput("torchvision:resnet50", "cpu") == []  # timm tables name timm models only
    assert published_gmacs("timm:resnet50", 224)[0]["gmacs"] == pytest.approx(4.11)
