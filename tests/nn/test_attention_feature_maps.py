"""Feature maps against their textbook formulas (independent of the code under test)."""

from __future__ import annotations

import math

import pytest
import torch

from spelab.nn.attention import LinearAttention
from spelab.nn.attention.feature_maps import elu_feature_map, favor_plus_features, relu_feature_map


def test_elu_plus_one() -> None:
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64)
    want = torch.tensor([math.exp(-3.0), math.exp(-0.5), 1.0, 1.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(elu_feature_map(x), want)


def test_relu_plus_lra_offset() -> None:
    x = torch.tensor([-3.0, 0.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(relu_feature_map(x), torch.tensor([1e-3, 1e-3, 0.501], dtype=torch.float64))


@pytest.mark.parametrize(
    "name,phi", [("elu", lambda x: torch.where(x > 0, x + 1, torch.exp(x))), ("relu", lambda x: x.clamp_min(0) + 1e-3)]
)
def test_linear_attention_one_query_by_hand(name, phi) -> None:
    """One query, three keys: out = sum_s w_s v_s / sum_s w_s with w_s = phi(q).phi(k_s)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 3, 1, 4, generator=g, dtype=torch.float64)
    k = torch.randn(1, 3, 1, 4, generator=g, dtype=torch.float64)
    v = torch.randn(1, 3, 1, 2, generator=g, dtype=torch.float64)
    out = LinearAttention(4, feature_map=name, eps=1e-12)(q, k, v)
    w = torch.stack([(phi(q[0, 2, 0]) * phi(k[0, s, 0])).sum() for s in range(3)])
    torch.testing.assert_close(out[0, 2, 0], (w[:, None] * v[0, :, 0]).sum(0) / w.sum())


def test_favor_plus_by_hand() -> None:
    """phi(x) = M^{-1/2} exp(W x~ - |x~|^2 / 2), x~ = x d^{-1/4} (no stabiliser, eps 0)."""
    d, m = 4, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, 1, d, generator=g, dtype=torch.float64)
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    xt = x[0, 0, 0] * d**-0.25
    want = torch.exp(w @ xt - 0.5 * xt.dot(xt)) / math.sqrt(m)
    got = favor_plus_features(x, w, is_query=False, stabilize_keys=False, eps=0.0)[0, 0, 0]
    torch.testing.assert_close(got, want)
    # the query stabiliser only rescales the row (it cancels in the attention normaliser)
    q = favor_plus_features(x, w, is_query=True, eps=0.0)[0, 0, 0]
    torch.testing.assert_close(q / q.sum(), want / want.sum())
    assert q.max() == pytest.approx(1 / math.sqrt(m))


@pytest.mark.parametrize("is_query", [True, False])
def test_favor_features_heads_first_equal_sequence_first_with_padding(is_query):
    """seq_dim=2 takes (B,H,N,d) and must give the same features (keys: the same stabiliser, padded
    keys excluded from it) as seq_dim=1 on (B,N,H,d)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 7, 3, 4, dtype=torch.float64, generator=g) * 3
    w = torch.randn(8, 4, dtype=torch.float64, generator=g)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 5:] = True
    x[0, 5:] += 10.0  # padded keys with large logits: they must not set the stabiliser
    a = favor_plus_features(x, w, is_query=is_query, key_padding_mask=mask)
    b = favor_plus_features(x.transpose(1, 2), w, is_query=is_query, key_padding_mask=mask, seq_dim=2)
    torch.testing.assert_close(b.transpose(1, 2), a)
