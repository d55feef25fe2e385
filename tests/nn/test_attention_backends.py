"""Behaviour shared by the three attention backends: shapes, references, recurrence, causality,
padding, gradients and argument checks. float64 so that equalities are tight."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spelab.nn.attention import LinearAttention, PerformerAttention, SoftmaxAttention
from spelab.nn.attention.feature_maps import favor_plus_features

D = 8
BACKENDS = {
    "softmax": lambda: SoftmaxAttention(key_dim=D),
    "performer": lambda: PerformerAttention(key_dim=D, num_features=32, redraw="never"),
    "linear_elu": lambda: LinearAttention(key_dim=D, feature_map="elu", chunk_size=4),
    "linear_relu": lambda: LinearAttention(key_dim=D, feature_map="relu", chunk_size=4),
}


def _make(name: str):
    torch.manual_seed(0)
    return BACKENDS[name]().double().eval()


def _qkv(b=2, n=11, h=3, dv=5, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, n, h, D, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(b, n, h, dv, generator=g, dtype=torch.float64)
    if requires_grad:
        for t in (q, k, v):
            t.requires_grad_()
    return q, k, v


def _kernel_reference(att, q, k, v, causal, mask):
    """Independent reference: explicit (B,H,N,N) weights from the backend's kernel, then normalise."""
    if isinstance(att, SoftmaxAttention):
        logits = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
        w = torch.exp(logits - logits.amax(-1, keepdim=True))
    else:
        if isinstance(att, PerformerAttention):
            fq = favor_plus_features(q, att.projection, is_query=True, eps=att.eps)
            # same stabiliser as the backend (per (batch, head) over real keys when bidirectional):
            # FAVOR+'s additive eps makes the result depend on it slightly
            fk = favor_plus_features(
                k, att.projection, is_query=False, stabilize_keys=not causal, key_padding_mask=mask, eps=att.eps
            )
        else:
            fq, fk = att._phi(q), att._phi(k)
        w = torch.einsum("bthm,bshm->bhts", fq, fk)
    n = q.shape[1]
    keep = torch.ones(q.shape[0], 1, n, n, dtype=torch.bool)
    if causal:
        keep = keep & torch.ones(n, n, dtype=torch.bool).tril()
    if mask is not None:
        keep = keep & ~mask[:, None, None, :]
    w = w * keep
    eps = 0.0 if isinstance(att, SoftmaxAttention) else att.eps
    den = w.sum(-1, keepdim=True)
    out = torch.einsum("bhts,bshe->bthe", w / (den + eps).clamp_min(1e-300), v)
    return out


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_explicit_reference(name: str, causal: bool, padded: bool) -> None:
    att = _make(name)
    q, k, v = _qkv()
    mask = None
    if padded:  # left padding in row 0 (forces an explicit mask for softmax), right padding in row 1
        mask = torch.zeros(2, 11, dtype=torch.bool)
        mask[0, :3] = True
        mask[1, 8:] = True
    out = att(q, k, v, causal=causal, key_padding_mask=mask)
    assert out.shape == v.shape
    ref = _kernel_reference(att, q, k, v, causal, mask)
    real = torch.ones(2, 11, dtype=torch.bool) if mask is None else ~mask
    if causal and mask is not None:
        # rows whose visible keys are all padded: softmax outputs 0 by contract, linear outputs 0 too
        visible = (~mask).cumsum(1) > 0
        real = real & visible
    torch.testing.assert_close(out[real], ref[real])


@pytest.mark.parametrize("name", list(BACKENDS))
def test_recurrent_steps_equal_parallel_causal(name: str) -> None:
    att = _make(name)
    q, k, v = _qkv(b=2, n=9, h=2, dv=3)
    full = att(q, k, v, causal=True)
    state = att.init_state(2, 2, 3, dtype=torch.float64)
    outs = []
    for t in range(9):
        o, state = att.step(q[:, t], k[:, t], v[:, t], state)
        assert o.shape == (2, 2, 3)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_causality(name: str) -> None:
    att = _make(name)
    q, k, v = _qkv(n=13)
    out = att(q, k, v, causal=True)
    t = 6
    q2, k2, v2 = (x.clone() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[:, t + 1 :] += 10.0 * torch.randn_like(x[:, t + 1 :])
    out2 = att(q2, k2, v2, causal=True)
    torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1], rtol=0, atol=1e-12)
    assert not torch.allclose(out2[:, t + 1 :], out[:, t + 1 :])  # the perturbation is visible later
    # and non-causal attention does look ahead (the test can fail)
    assert not torch.allclose(att(q2, k2, v2)[:, : t + 1], att(q, k, v)[:, : t + 1])


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("causal", [False, True])
def test_padding_is_ignored(name: str, causal: bool) -> None:
    att = _make(name)
    q, k, v = _qkv(n=10)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 7:] = True  # right padding
    mask[1, :2] = True  # left padding
    mask[1, 5] = True  # a hole
    out = att(q, k, v, causal=causal, key_padding_mask=mask)
    q2, k2, v2 = (x.clone() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[mask] = 100.0 * torch.randn_like(x[mask])
    out2 = att(q2, k2, v2, causal=causal, key_padding_mask=mask)
    real = ~mask
    torch.testing.assert_close(out2[real], out[real], rtol=1e-9, atol=1e-9)
    # and without the mask the same change would matter
    assert not torch.allclose(att(q2, k2, v2, causal=causal)[real], att(q, k, v, causal=causal)[real])


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("causal", [False, True])
def test_all_padded_rows_are_finite(name: str, causal: bool) -> None:
    att = _make(name)
    q, k, v = _qkv(n=6)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0] = True  # a sequence made only of padding
    mask[1, :2] = True  # left padding: causal rows 0, 1 see no real key
    out = att(q, k, v, causal=causal, key_padding_mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.zeros_like(out[0]), atol=1e-12, rtol=0)


def test_softmax_right_padding_fast_path_equals_explicit_mask() -> None:
    """Causal + right padding runs mask-free (is_causal); real outputs must equal the masked form."""
    att = _make("softmax")
    q, k, v = _qkv(n=10)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 6:] = True
    fast = att(q, k, v, causal=True, key_padding_mask=mask)
    ref = _kernel_reference(att, q, k, v, True, mask)
    torch.testing.assert_close(fast[~mask], ref[~mask])


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_finite_and_reach_qkv(name: str, causal: bool) -> None:
    att = BACKENDS[name]().train()
    q, k, v = (x.float().detach().requires_grad_() for x in _qkv())
    out = att(q, k, v, causal=causal)
    (out * torch.randn_like(out)).sum().backward()
    for x in (q, k, v):
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0


@settings(max_examples=10, deadline=None)
@given(
    b=st.integers(1, 2),
    n=st.integers(1, 20),
    h=st.integers(1, 3),
    dv=st.integers(1, 6),
    name=st.sampled_from(sorted(BACKENDS)),
    causal=st.booleans(),
)
def test_output_shape_any_size(b, n, h, dv, name, causal) -> None:
    att = _make(name)
    q, k, v = _qkv(b=b, n=n, h=h, dv=dv)
    out = att(q, k, v, causal=causal)
    assert out.shape == (b, n, h, dv) and out.dtype == v.dtype and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_half_inputs_keep_dtype(name: str) -> None:
    att = BACKENDS[name]().eval()
    q, k, v = (x.to(torch.bfloat16) for x in _qkv())
    out = att(q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    ref = att.float()(q.float(), k.float(), v.float(), causal=True)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_bad_arguments_raise(name: str) -> None:
    att = _make(name)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="key_dim"):
        att(q[..., :4], k[..., :4], v)
    with pytest.raises(ValueError, match="4-D"):
        att(q[0], k, v)
    with pytest.raises(ValueError, match="batch, length, heads"):
        att(q, k[:, :5], v)
    with pytest.raises(ValueError, match="key_padding_mask"):
        att(q, k, v, key_padding_mask=torch.zeros(2, 11))  # not bool
    with pytest.raises(ValueError, match="key_padding_mask"):
        att(q, k, v, key_padding_mask=torch.zeros(2, 10, dtype=torch.bool))
    state = att.init_state(2, 3, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="3-D"):
        att.step(q[:, 0:1], k[:, 0], v[:, 0], state)
    with pytest.raises(ValueError, match="state"):
        att.step(q[:, 0], k[:, 0], v[:, 0], state=(1, 2))
    with pytest.raises(ValueError, match="batch_size"):
        att.init_state(0, 3, 5)


def test_constructor_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="key_dim"):
        SoftmaxAttention(key_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        SoftmaxAttention(key_dim=8, dropout=1.5)
    with pytest.raises(ValueError, match="feature_map.*'elu'"):
        LinearAttention(key_dim=8, feature_map="softplus")
    with pytest.raises(ValueError, match="redraw"):
        PerformerAttention(key_dim=8, redraw="epoch")
    with pytest.raises(ValueError, match="redraw"):
        PerformerAttention(key_dim=8, redraw=0)
    with pytest.raises(ValueError, match="num_features"):
        PerformerAttention(key_dim=8, num_features=0)
    with pytest.raises(ValueError, match="eps"):
        LinearAttention(key_dim=8, eps=0.0)


def test_softmax_dropout_only_in_training() -> None:
    att = SoftmaxAttention(key_dim=D, dropout=0.5).double()
    q, k, v = _qkv()
    att.eval()
    torch.testing.assert_close(att(q, k, v), att(q, k, v))
    att.train()
    assert not torch.allclose(att(q, k, v), att(q, k, v))


def test_softmax_mask_decision_follows_in_place_changes() -> None:
    """The padding-layout decision is cached per mask tensor; editing the mask must invalidate it."""
    att = _make("softmax")
    q, k, v = _qkv(n=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    first = att(q, k, v, key_padding_mask=mask)
    torch.testing.assert_close(first, att(q, k, v))
    mask[0, :3] = True  # same tensor object, new content
    out = att(q, k, v, key_padding_mask=mask)
    torch.testing.assert_close(out[~mask], _kernel_reference(att, q, k, v, False, mask)[~mask])
    assert not torch.allclose(out[0], first[0])


@pytest.mark.parametrize("name", list(BACKENDS))
def test_runs_under_inference_mode(name: str) -> None:
    """Inference tensors carry no version counter (the softmax mask cache must cope)."""
    att = _make(name)
    q, k, v = _qkv(n=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[1, 6:] = True
    want = att(q, k, v, causal=True, key_padding_mask=mask)
    with torch.inference_mode():
        mask_i = mask.clone()
        for _ in range(2):
            got = att(q, k, v, causal=True, key_padding_mask=mask_i)
            torch.testing.assert_close(got[~mask], want[~mask])
