"""GLA, DeltaNet and the decayed kernel backends: chunked = naive reference (float64), explicit
references, causality, padding, recurrent step = parallel form, gradients, and the refused biases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spelab.nn.attention import (
    DeltaNetAttention,
    bidirectional_gated_scan,
    GatedLinearAttention,
    LinearAttention,
    PerformerAttention,
    SoftmaxAttention,
    chunk_delta_rule,
    chunk_gated_scan,
    naive_bidirectional_gated_scan,
    naive_delta_rule,
    naive_gated_scan,
)
from spelab.nn.positional import ALiBi, ExponentialDecay

D, H = 8, 3


def _qkv(b=2, n=13, dv=5, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, n, H, D, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(b, n, H, dv, generator=g, dtype=torch.float64)
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


@pytest.mark.parametrize("n, chunk", [(1, 4), (13, 4), (16, 8), (13, 64)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_chunk_gated_scan_matches_naive(n, chunk, per_channel):
    q, k, v = _qkv(n=n)
    log_g = -torch.rand(2, n, H, D if per_channel else 1, dtype=torch.float64) * 2
    state0 = torch.randn(2, H, D, 5, dtype=torch.float64)
    ref, ref_state = naive_gated_scan(q, k, v, log_g, state=state0)
    out, state = chunk_gated_scan(q, k, v, log_g, chunk_size=chunk, state=state0)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state, ref_state, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, chunk", [(1, 4), (13, 4), (16, 8), (13, 64)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_bidirectional_gated_scan_matches_naive(n, chunk, per_channel):
    q, k, v = _qkv(n=n)
    log_g = -torch.rand(2, n, H, D if per_channel else 1, dtype=torch.float64) * 2
    out = bidirectional_gated_scan(q, k, v, log_g, chunk_size=chunk)
    torch.testing.assert_close(out, naive_bidirectional_gated_scan(q, k, v, log_g), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, chunk", [(1, 4), (13, 4), (16, 8), (13, 64)])
@pytest.mark.parametrize("decay", [False, True])
def test_chunk_delta_rule_matches_naive(n, chunk, decay):
    q, k, v = _qkv(n=n)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    beta = torch.rand(2, n, H, dtype=torch.float64)
    log_a = -torch.rand(2, n, H, dtype=torch.float64) * 0.5 if decay else None
    state0 = torch.randn(2, H, D, 5, dtype=torch.float64)
    ref, ref_state = naive_delta_rule(q, k, v, beta, log_a, state=state0)
    out, state = chunk_delta_rule(q, k, v, beta, log_a, chunk_size=chunk, state=state0)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state, ref_state, rtol=1e-10, atol=1e-10)


def test_delta_rule_is_a_delta_rule():
    """beta = 1 with one key written twice: the second value replaces the first (not a sum)."""
    k = F.normalize(torch.randn(1, 1, 1, D, dtype=torch.float64), dim=-1).expand(1, 2, 1, D)
    v = torch.randn(1, 2, 1, 4, dtype=torch.float64)
    out, _ = chunk_delta_rule(k, k, v, torch.ones(1, 2, 1, dtype=torch.float64))
    torch.testing.assert_close(out[:, 1], v[:, 1])


BACKENDS = {
    "gla": lambda: GatedLinearAttention(key_dim=D, chunk_size=4),
    "deltanet": lambda: DeltaNetAttention(key_dim=D, chunk_size=4),
    "linear": lambda: LinearAttention(key_dim=D, chunk_size=4),
    "performer": lambda: PerformerAttention(key_dim=D, num_features=16, redraw="never", chunk_size=4),
}
BIASES = {"none": lambda: None, "decay": lambda: ExponentialDecay(H, D, min_exponent=1.0).double()}
CASES = [(a, b) for a in BACKENDS for b in BIASES if not (b == "none" and a in ("linear", "performer"))]


def _make(name):
    torch.manual_seed(0)
    return BACKENDS[name]().double().eval()


@pytest.mark.parametrize("name, bias", CASES)
def test_causal_output_ignores_the_future(name, bias):
    att, b = _make(name), BIASES[bias]()
    q, k, v = _qkv()
    out = att(q, k, v, causal=True, bias=b)
    q2, k2, v2 = (t.clone() for t in (q, k, v))
    for t in (q2, k2, v2):
        t[:, 7:] = torch.randn_like(t[:, 7:])
    out2 = att(q2, k2, v2, causal=True, bias=b)
    torch.testing.assert_close(out2[:, :7], out[:, :7])
    assert not torch.allclose(out2[:, 7:], out[:, 7:])


@pytest.mark.parametrize("name, bias", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_padded_keys_change_nothing(name, bias, causal):
    """Real outputs equal those of the unpadded sequence, whatever sits in the (right) padding."""
    att, b = _make(name), BIASES[bias]()
    q, k, v = _qkv()
    mask = torch.zeros(2, 13, dtype=torch.bool)
    mask[:, 9:] = True
    out = att(q, k, v, causal=causal, key_padding_mask=mask, bias=b)
    short = att(q[:, :9], k[:, :9], v[:, :9], causal=causal, bias=b)
    torch.testing.assert_close(out[:, :9], short)


@pytest.mark.parametrize("name, bias", CASES)
def test_step_matches_causal_forward(name, bias):
    att, b = _make(name), BIASES[bias]()
    q, k, v = _qkv()
    full = att(q, k, v, causal=True, bias=b)
    state = att.init_state(2, H, 5, dtype=torch.float64)
    for t in range(q.shape[1]):
        out, state = att.step(q[:, t].transpose(0, 0), k[:, t], v[:, t], state, bias=b)
        torch.testing.assert_close(out, full[:, t], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["gla", "deltanet"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_reach_every_parameter_and_input(name, causal):
    att = _make(name).train()
    q, k, v = _qkv(requires_grad=True)
    att(q, k, v, causal=causal).square().sum().backward()
    for p_name, p in [*att.named_parameters(), ("q", q), ("k", k), ("v", v)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, p_name


def _decay_reference(fq, fk, v, log_gamma, causal, eps):
    n = fq.shape[1]
    dist = (torch.arange(n)[:, None] - torch.arange(n)[None]).abs().double()
    w = torch.einsum("bthm,bshm->bhts", fq, fk) * torch.exp(log_gamma[:, None, None] * dist)
    if causal:
        w = w * torch.ones(n, n, dtype=torch.bool).tril()
    return torch.einsum("bhts,bshe->bthe", w / (w.sum(-1, keepdim=True) + eps), v)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_with_decay_matches_explicit_weights(causal):
    att, decay = _make("linear"), BIASES["decay"]()
    q, k, v = _qkv()
    ref = _decay_reference(att._phi(q), att._phi(k), v, decay.log_decay().double(), causal, att.eps)
    torch.testing.assert_close(att(q, k, v, causal=causal, bias=decay), ref)


@pytest.mark.parametrize("causal", [False, True])
def test_gla_matches_explicit_gated_weights(causal):
    """Every pair (t, s) weighted by the product of the gates between them (both directions)."""
    att = _make("gla")
    q, k, v = _qkv()
    log_g = F.logsigmoid(att.gate(k)) / att.gate_temperature  # (B,N,H,D)
    cum = log_g.cumsum(1)
    n = q.shape[1]
    t, s = torch.arange(n)[:, None], torch.arange(n)[None]
    # forward: gates s+1..t; backward (s > t): gates t..s-1
    fwd = cum[:, :, None] - cum[:, None, :]  # (B,T,S,H,D) = sum_{s+1..t}
    bwd = (cum - log_g)[:, None, :] - (cum - log_g)[:, :, None]  # sum_{t..s-1}
    expo = torch.where((s <= t)[None, :, :, None, None], fwd, bwd)
    keep = (s <= t) if causal else torch.ones(n, n, dtype=torch.bool)
    w = torch.einsum("bthd,bshd,btshd->bhts", q * D**-0.5, k, expo.masked_fill(~keep[None, :, :, None, None], 0).exp())
    w = w * keep
    ref = F.rms_norm(torch.einsum("bhts,bshe->bthe", w, v), (5,))
    torch.testing.assert_close(att(q, k, v, causal=causal), ref)


@pytest.mark.parametrize("name", ["gla", "deltanet", "linear", "performer"])
def test_a_logit_bias_is_refused_naming_the_backends_that_take_it(name):
    att = _make(name)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="softmax"):
        att(q, k, v, bias=ALiBi(H, D))


def test_softmax_with_decay_bias_matches_explicit_logits():
    att, decay = SoftmaxAttention(key_dim=D).double(), BIASES["decay"]()
    q, k, v = _qkv()
    n = q.shape[1]
    dist = (torch.arange(n)[:, None] - torch.arange(n)[None]).abs().double()
    logits = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D) + decay.log_decay().double()[:, None, None] * dist
    ref = torch.einsum("bhts,bshe->bthe", logits.softmax(-1), v)
    torch.testing.assert_close(att(q, k, v, bias=decay), ref)


@pytest.mark.parametrize("name", ["gla", "deltanet"])
@pytest.mark.parametrize("causal", [False, True])
def test_padding_inside_the_sequence_is_invisible(name, causal):
    """A padded token writes nothing and decays nothing: real outputs equal those with it removed."""
    att = _make(name)
    q, k, v = _qkv()
    mask = torch.zeros(2, 13, dtype=torch.bool)
    mask[:, 4:6] = True
    keep = ~mask[0]
    out = att(q, k, v, causal=causal, key_padding_mask=mask)
    torch.testing.assert_close(out[:, keep], att(q[:, keep], k[:, keep], v[:, keep], causal=causal))


def test_bidirectional_deltanet_is_the_mean_of_the_two_naive_scans():
    att = _make("deltanet")
    q, k, v = _qkv()
    beta = torch.sigmoid(att.beta(k))[..., 0]
    qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    fwd, _ = naive_delta_rule(qn, kn, v, beta)
    bwd, _ = naive_delta_rule(qn.flip(1), kn.flip(1), v.flip(1), beta.flip(1))
    torch.testing.assert_close(att(q, k, v, causal=False), 0.5 * (fwd + bwd.flip(1)))
