"""PerformerAttention: FAVOR+ approximates softmax attention, orthogonal features, redraw policy."""

from __future__ import annotations

import pytest
import torch

from spelab.nn.attention import PerformerAttention, SoftmaxAttention
from spelab.nn.attention.feature_maps import favor_plus_features, orthogonal_gaussian_matrix


def _qkv(d: int, n: int = 16, seed: int = 0, scale: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    q, k = (scale * torch.randn(1, n, 2, d, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(1, n, 2, 4, generator=g, dtype=torch.float64)
    return q, k, v


@pytest.mark.parametrize("causal", [False, True])
def test_error_to_softmax_falls_with_num_features(causal: bool) -> None:
    d = 8
    # moderate logits: FAVOR+'s variance grows like exp(|q|^2 + |k|^2), so large norms converge slowly
    exact = {s: SoftmaxAttention(d)(*_qkv(d, seed=s, scale=0.3), causal=causal) for s in range(6)}
    errors = []
    for m in (8, 64, 512, 2048):
        err = 0.0
        for s in range(6):  # average over draws and inputs so the trend is robust
            torch.manual_seed(100 + s)
            att = PerformerAttention(d, num_features=m, redraw="never").double().eval()
            out = att(*_qkv(d, seed=s, scale=0.3), causal=causal)
            err += ((out - exact[s]).norm() / exact[s].norm()).item() / 6
        errors.append(err)
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.35 * errors[1], errors  # Monte-Carlo rate: 32x features -> ~5.7x smaller
    assert errors[-1] < 0.03, errors


def test_temperature_follows_the_received_dimension() -> None:
    """Features for key_dim=R use R**-0.25 per side: the kernel estimate is exp(q.k / sqrt(R))."""
    r = 16
    g = torch.Generator().manual_seed(3)
    x = 0.5 * torch.randn(200, 1, 1, r, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(200, 1, 1, r, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    w = orthogonal_gaussian_matrix(8192, r, dtype=torch.float64)
    fx = favor_plus_features(x, w, is_query=False, stabilize_keys=False, eps=0.0)
    fy = favor_plus_features(y, w, is_query=False, stabilize_keys=False, eps=0.0)
    est = (fx * fy).sum(-1).flatten()
    exact = torch.exp((x * y).sum(-1).flatten() / r**0.5)
    rel = ((est - exact).abs() / exact).mean()
    assert rel < 0.03, rel


def test_orthogonal_blocks_and_chi_norms() -> None:
    d = 16
    torch.manual_seed(0)
    w = orthogonal_gaussian_matrix(64 * d + 5, d, dtype=torch.float64)
    assert w.shape == (64 * d + 5, d)
    block = w[:d] / w[:d].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(d, dtype=torch.float64))
    sq = (w * w).sum(1)
    assert abs(sq.mean().item() - d) < 1.2  # E|w|^2 = d for chi(d) norms (sd of the mean ~ 0.18)
    # not all rows share one norm (as plain orthonormal rows would)
    assert sq.std() > 1.0


def _changes(att: PerformerAttention, calls: int, mode: str = "forward") -> list[bool]:
    q, k, v = (x.float() for x in _qkv(8))
    flags = []
    for _ in range(calls):
        before = att.projection.clone()
        if mode == "forward":
            att(q, k, v)
        else:
            st = att.init_state(1, 2, 4)
            att.step(q[:, 0], k[:, 0], v[:, 0], st)
        flags.append(not torch.equal(before, att.projection))
    return flags


def test_redraw_every_step_in_training() -> None:
    att = PerformerAttention(8, num_features=16, redraw="step").train()
    assert _changes(att, 4) == [False, True, True, True]


def test_no_redraw_in_eval_while_decoding_or_never() -> None:
    att = PerformerAttention(8, num_features=16, redraw="step")
    assert _changes(att.eval(), 3) == [False] * 3
    assert _changes(att.train(), 3, mode="step") == [False] * 3
    assert _changes(PerformerAttention(8, num_features=16, redraw="never").train(), 3) == [False] * 3


def test_redraw_every_n_steps() -> None:
    att = PerformerAttention(8, num_features=16, redraw=3).train()
    assert _changes(att, 7) == [False, False, False, True, False, False, True]


def test_eval_output_deterministic_and_projection_saved() -> None:
    att = PerformerAttention(8, num_features=16).eval()
    q, k, v = (x.float() for x in _qkv(8))
    torch.testing.assert_close(att(q, k, v), att(q, k, v))
    clone = PerformerAttention(8, num_features=16)
    clone.load_state_dict(att.state_dict())
    torch.testing.assert_close(clone.eval()(q, k, v), att(q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_large_inputs_stay_finite(causal: bool) -> None:
    att = PerformerAttention(8, num_features=32).train()
    q, k, v = (x.float() for x in _qkv(8, scale=30.0))
    q.requires_grad_()
    out = att(q, k, v, causal=causal)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q.grad).all()


def test_redraw_keeps_pending_graphs_valid() -> None:
    """Two training calls before one backward (a layer used twice): the redraw must not break the
    first call's graph, and each call used its own features."""
    att = PerformerAttention(8, num_features=16, redraw="step").train()
    q, k, v = (x.float().requires_grad_() for x in _qkv(8))
    first = att(q, k, v)
    p1 = att.projection
    second = att(q, k, v)
    assert not torch.equal(p1, att.projection)
    (first.sum() + second.sum()).backward()
    assert torch.isfinite(q.grad).all()


def test_redraw_schedule_survives_a_checkpoint() -> None:
    att = PerformerAttention(8, num_features=16, redraw=3).train()
    assert _changes(att, 2) == [False, False]
    resumed = PerformerAttention(8, num_features=16, redraw=3).train()
    resumed.load_state_dict(att.state_dict())
    torch.testing.assert_close(resumed.projection, att.projection)
    assert _changes(resumed, 4) == [False, True, False, False]  # calls 3..6 of the same schedule
