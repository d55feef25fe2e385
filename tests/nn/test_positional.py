"""Absolute encodings, rotary embedding and build_positional."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from spelab.nn.positional import (
    ConvSPE,
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    RotaryEmbedding,
    SineSPE,
    SinusoidalPositionalEncoding,
    build_positional,
)


def _sinusoid_reference(positions, d_model):
    """pe[t, 2i] = sin(t / 10000^(2i/d)), pe[t, 2i+1] = cos(t / 10000^(2i/d)), with numpy loops."""
    out = np.zeros((len(positions), d_model))
    for row, t in enumerate(positions):
        for j in range(d_model):
            angle = t / 10000 ** (2 * (j // 2) / d_model)
            out[row, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return out


# ---------------------------------------------------------------------------- absolute
def test_none_returns_input():
    x = torch.randn(2, 5, 6)
    assert NoPositionalEncoding(6, 8)(x, offset=3) is x
    assert NoPositionalEncoding.is_relative is False


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_matches_formula_inside_and_beyond_max_len(d_model):
    pe = SinusoidalPositionalEncoding(d_model, max_len=10).double()
    x = torch.zeros(1, 6, d_model, dtype=torch.float64)
    inside = pe(x, offset=2)[0]
    across = pe(x, offset=7)[0]  # positions 7..12, max_len 10
    beyond = pe(x, offset=500)[0]
    np.testing.assert_allclose(inside.numpy(), _sinusoid_reference(range(2, 8), d_model), atol=1e-12)
    np.testing.assert_allclose(across.numpy(), _sinusoid_reference(range(7, 13), d_model), atol=1e-12)
    np.testing.assert_allclose(beyond.numpy(), _sinusoid_reference(range(500, 506), d_model), atol=1e-10)
    assert not any(p.requires_grad for p in pe.parameters())


def test_sinusoidal_adds_to_input():
    pe = SinusoidalPositionalEncoding(4, max_len=16)
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(pe(x) - x, pe(torch.zeros_like(x)))


def test_learned_shapes_offsets_and_limit():
    pe = LearnedPositionalEncoding(4, max_len=8)
    x = torch.randn(2, 3, 4)
    out = pe(x, offset=5)
    assert out.shape == x.shape
    torch.testing.assert_close(out - x, pe.weight[5:8].expand(2, 3, 4))
    out.sum().backward()
    assert pe.weight.grad[5:8].abs().sum() > 0 and pe.weight.grad[:5].abs().sum() == 0
    with pytest.raises(ValueError, match="max_len=8"):
        pe(x, offset=6)


@pytest.mark.parametrize("cls", [NoPositionalEncoding, SinusoidalPositionalEncoding, LearnedPositionalEncoding])
def test_absolute_bad_arguments(cls):
    with pytest.raises(ValueError, match="d_model"):
        cls(0, 8)
    with pytest.raises(ValueError, match="max_len"):
        cls(4, -1)
    pe = cls(4, 8)
    with pytest.raises(ValueError, match="d_model=4"):
        pe(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="offset"):
        pe(torch.randn(2, 3, 4), offset=-2)


# ---------------------------------------------------------------------------- rope
def _rope_scores(rope, a, b, n, offset):
    """Scores q̂_m·k̂_n of the same content vectors a (query) and b (key) placed at every position."""
    q = a.expand(1, n, *a.shape).clone()
    k = b.expand(1, n, *b.shape).clone()
    qh, kh = rope(q, k, offset=offset)
    return torch.einsum("bmhd,bnhd->bhmn", qh, kh)[0]


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(2, 8, base=100.0)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 8, generator=g, dtype=torch.float64)
    b = torch.randn(2, 8, generator=g, dtype=torch.float64)
    s = _rope_scores(rope, a, b, 12, offset=0)
    torch.testing.assert_close(s[:, 1:, 1:], s[:, :-1, :-1])  # constant along diagonals
    torch.testing.assert_close(_rope_scores(rope, a, b, 12, offset=1000), s)  # global shift invariance
    assert (s[:, 0, 0] - s[:, 5, 0]).abs().min() > 1e-3  # but it does depend on m - n


def test_rope_preserves_norms_and_steps_match_full():
    rope = RotaryEmbedding(3, 6)
    q, k = torch.randn(2, 10, 3, 6, dtype=torch.float64), torch.randn(2, 10, 3, 6, dtype=torch.float64)
    qh, kh = rope(q, k, offset=3)
    torch.testing.assert_close(qh.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(kh.norm(dim=-1), k.norm(dim=-1))
    steps = [rope(q[:, t : t + 1], k[:, t : t + 1], offset=3 + t) for t in range(10)]
    torch.testing.assert_close(torch.cat([s[0] for s in steps], 1), qh)
    torch.testing.assert_close(torch.cat([s[1] for s in steps], 1), kh)


def test_rope_interface():
    rope = RotaryEmbedding(2, 4)
    assert rope.is_relative is True and rope.key_dim == 4
    assert rope.draw(10) is None and rope.make_gate() is None
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(2, 5)
    with pytest.raises(ValueError, match="same shape"):
        rope(torch.randn(1, 3, 2, 4), torch.randn(1, 4, 2, 4))


# ---------------------------------------------------------------------------- build_positional
@pytest.mark.parametrize(
    "factory,cls,kind",
    [
        (functools.partial(SineSPE, num_realizations=16, num_sines=2), SineSPE, "relative"),
        (functools.partial(ConvSPE, kernel_size=7), ConvSPE, "relative"),
        (RotaryEmbedding, RotaryEmbedding, "relative"),
        (functools.partial(SinusoidalPositionalEncoding), SinusoidalPositionalEncoding, "absolute"),
        (LearnedPositionalEncoding, LearnedPositionalEncoding, "absolute"),
        (None, NoPositionalEncoding, "absolute"),
    ],
)
def test_build_positional_passes_the_arguments_of_each_kind(factory, cls, kind):
    module = build_positional(factory, d_model=24, num_heads=3, head_dim=8, max_len=50)
    assert type(module) is cls
    if kind == "relative":
        q = torch.randn(2, 5, 3, 8)
        qh, kh = module(q, q.clone())
        assert qh.shape == (2, 5, 3, module.key_dim)
    else:
        assert module(torch.randn(2, 5, 24)).shape == (2, 5, 24)
        assert module.max_len == 50


def test_build_positional_rejects_non_schemes():
    with pytest.raises(ValueError, match="positional scheme"):
        build_positional(torch.nn.Linear, d_model=4, num_heads=1, head_dim=4, max_len=8)
