"""Causal linear-attention kernels: chunked == naive prefix sum == explicit masked attention (float64)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spelab.nn.attention.causal_linear import (
    causal_linear_attention,
    causal_linear_chunked,
    causal_linear_naive,
    fla_available,
    init_linear_state,
    linear_attention,
    linear_attention_masked,
    linear_step,
)
from spelab.nn.attention.feature_maps import elu_feature_map


def _features(b: int, n: int, h: int, m: int, e: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    phi_q = elu_feature_map(torch.randn(b, n, h, m, generator=g, dtype=torch.float64))
    phi_k = elu_feature_map(torch.randn(b, n, h, m, generator=g, dtype=torch.float64))
    v = torch.randn(b, n, h, e, generator=g, dtype=torch.float64)
    return phi_q, phi_k, v


def _loop_reference(phi_q, phi_k, v, eps=1e-6):
    """Independent re-computation: a Python loop over t with explicit sums over s <= t."""
    b, n, h, _ = phi_q.shape
    out = torch.empty(b, n, h, v.shape[-1], dtype=v.dtype)
    for t in range(n):
        w = (phi_q[:, t : t + 1] * phi_k[:, : t + 1]).sum(-1)  # (B,t+1,H)
        out[:, t] = (w.unsqueeze(-1) * v[:, : t + 1]).sum(1) / (w.sum(1).unsqueeze(-1) + eps)
    return out


@pytest.mark.parametrize("n,chunk", [(1, 4), (7, 4), (16, 4), (33, 8), (50, 64), (64, 16), (65, 16)])
def test_chunked_equals_naive_and_masked(n: int, chunk: int) -> None:
    phi_q, phi_k, v = _features(2, n, 3, 5, 4, seed=n)
    ref = _loop_reference(phi_q, phi_k, v)
    torch.testing.assert_close(linear_attention_masked(phi_q, phi_k, v, causal=True), ref)
    torch.testing.assert_close(causal_linear_naive(phi_q, phi_k, v), ref)
    torch.testing.assert_close(causal_linear_chunked(phi_q, phi_k, v, chunk_size=chunk), ref)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 40),
    h=st.integers(1, 3),
    m=st.integers(1, 6),
    e=st.integers(1, 5),
    chunk=st.integers(1, 17),
)
def test_chunked_matches_naive_any_shape(b, n, h, m, e, chunk) -> None:
    phi_q, phi_k, v = _features(b, n, h, m, e, seed=b * 1000 + n)
    out = causal_linear_chunked(phi_q, phi_k, v, chunk_size=chunk)
    assert out.shape == (b, n, h, e)
    torch.testing.assert_close(out, causal_linear_naive(phi_q, phi_k, v))


def test_bidirectional_equals_masked_reference() -> None:
    phi_q, phi_k, v = _features(2, 11, 2, 4, 3)
    ref = linear_attention_masked(phi_q, phi_k, v, causal=False)
    torch.testing.assert_close(linear_attention(phi_q, phi_k, v), ref)
    # and the masked reference really is the attention-weighted mean: weights sum to 1 per row
    torch.testing.assert_close(linear_attention(phi_q, phi_k, torch.ones_like(v), eps=0.0), torch.ones_like(v))
    # heads-first layout (the fast path of the attention modules): the same numbers
    hf = linear_attention(*(t.transpose(1, 2) for t in (phi_q, phi_k, v)), heads_first=True)
    torch.testing.assert_close(hf.transpose(1, 2), ref)


def test_recurrent_steps_equal_chunked() -> None:
    phi_q, phi_k, v = _features(2, 13, 2, 4, 3)
    state = init_linear_state(2, 2, 4, 3, dtype=torch.float64)
    outs = []
    for t in range(13):
        o, state = linear_step(phi_q[:, t], phi_k[:, t], v[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), causal_linear_chunked(phi_q, phi_k, v, chunk_size=4))
    # the state is the full sum: S = sum_t phi_k v^T
    torch.testing.assert_close(state.S, torch.einsum("bnhm,bnhe->bhme", phi_k, v))


def test_zero_key_weight_gives_zero_not_nan() -> None:
    phi_q, phi_k, v = _features(1, 6, 1, 3, 2)
    phi_k = torch.zeros_like(phi_k)
    for out in (causal_linear_chunked(phi_q, phi_k, v, chunk_size=4), linear_attention(phi_q, phi_k, v)):
        assert torch.isfinite(out).all()
        assert out.abs().max() == 0


def test_chunked_gradients_match_naive() -> None:
    phi_q, phi_k, v = (t.requires_grad_() for t in _features(1, 19, 2, 3, 2))
    g = torch.randn(1, 19, 2, 2, dtype=torch.float64)
    ga = torch.autograd.grad((causal_linear_chunked(phi_q, phi_k, v, chunk_size=5) * g).sum(), (phi_q, phi_k, v))
    gb = torch.autograd.grad((causal_linear_naive(phi_q, phi_k, v) * g).sum(), (phi_q, phi_k, v))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_bad_arguments_raise() -> None:
    phi_q, phi_k, v = _features(1, 4, 1, 2, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        causal_linear_chunked(phi_q, phi_k, v, chunk_size=0)
    with pytest.raises(ValueError, match="backend"):
        causal_linear_attention(phi_q, phi_k, v, backend="cuda")
    if not fla_available():
        with pytest.raises(ValueError, match="fla"):
            causal_linear_attention(phi_q, phi_k, v, backend="fla")


def test_chunked_backward_passes_gradcheck() -> None:
    phi_q, phi_k, v = (t.requires_grad_() for t in _features(1, 7, 2, 3, 2, seed=5))
    assert torch.autograd.gradcheck(lambda a, b, c: causal_linear_chunked(a, b, c, chunk_size=3), (phi_q, phi_k, v))


@pytest.mark.parametrize("n,chunk", [(1, 4), (8, 8), (23, 5), (40, 16)])
def test_chunked_gradients_match_naive_shapes(n: int, chunk: int) -> None:
    phi_q, phi_k, v = (t.requires_grad_() for t in _features(2, n, 2, 4, 3, seed=n))
    g = torch.randn(2, n, 2, 3, dtype=torch.float64)
    ga = torch.autograd.grad((causal_linear_chunked(phi_q, phi_k, v, chunk_size=chunk) * g).sum(), (phi_q, phi_k, v))
    gb = torch.autograd.grad((causal_linear_naive(phi_q, phi_k, v) * g).sum(), (phi_q, phi_k, v))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("use_cumsum", [False, True])  # the CPU loop and the CUDA cumsum formula
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 2, 7])
def test_exclusive_prefix_sums_of_chunk_states(use_cumsum: bool, reverse: bool, length: int) -> None:
    from spelab.nn.attention.causal_linear import _exclusive_cumsum_

    x = torch.randn(2, 3, length, 4, 5, dtype=torch.float64)
    want = torch.stack([(x[:, :, i + 1 :] if reverse else x[:, :, :i]).sum(2) for i in range(length)], dim=2)
    torch.testing.assert_close(_exclusive_cumsum_(x.clone(), 2, reverse, use_cumsum=use_cumsum), want)
