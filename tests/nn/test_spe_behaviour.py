"""SPE modules as used by the Transformer: codes longer than the input, offsets, one-token decoding,
per-layer gates, gradients to every parameter, and clear errors for bad arguments."""

from __future__ import annotations

import pytest
import torch

from spelab.nn.positional import ConvSPE, SineSPE

KINDS = {
    "sine": lambda **kw: SineSPE(2, 4, num_realizations=8, num_sines=3, **kw),
    "conv": lambda **kw: ConvSPE(2, 4, num_realizations=8, kernel_size=5, **kw),
}


def _qk(n: int, batch: int = 2, dtype=torch.float64):
    g = torch.Generator().manual_seed(7)
    return (
        torch.randn(batch, n, 2, 4, generator=g, dtype=dtype),
        torch.randn(batch, n, 2, 4, generator=g, dtype=dtype),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_attributes(kind):
    spe = KINDS[kind]()
    assert spe.is_relative is True and type(spe).is_relative is True
    assert spe.key_dim == 8
    q, k = _qk(10, dtype=torch.float32)
    qhat, khat = spe(q, k)
    assert qhat.shape == khat.shape == (2, 10, 2, 8)
    assert spe.kernel(torch.arange(-3, 4)).shape == (2, 4, 7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gated", [False, True])
def test_fresh_code_per_call_and_fixed_code_reused(kind, gated):
    """Without a code every call draws afresh (gate noise included); a given code fixes everything."""
    spe = KINDS[kind](gated=gated).double()
    q, k = _qk(6)
    a, _ = spe(q, k)
    b, _ = spe(q, k)
    assert not torch.allclose(a, b)  # a fresh draw each call
    code = spe.draw(6)
    c, _ = spe(q, k, code=code)
    d, _ = spe(q, k, code=code)
    torch.testing.assert_close(c, d, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gated", [False, True])
def test_longer_code_with_offset_equals_slicing(kind, gated):
    spe = KINDS[kind](gated=gated).double()
    q, k = _qk(12)
    code = spe.draw(30)
    noise = spe.draw_gate_noise() if gated else None
    full_q, full_k = spe.filter(q, k, code, offset=0, gate=spe.gate, gate_noise=noise)
    part_q, part_k = spe.filter(q[:, 4:9], k[:, 4:9], code, offset=4, gate=spe.gate, gate_noise=noise)
    torch.testing.assert_close(part_q, full_q[:, 4:9], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(part_k, full_k[:, 4:9], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gated", [False, True])
def test_one_token_at_a_time_equals_full_sequence(kind, gated):
    """Recurrent decoding: position t alone with offset=t gives row t of the full pass (same code)."""
    spe = KINDS[kind](gated=gated).double()
    q, k = _qk(16)
    code = spe.draw(16)
    noise = spe.draw_gate_noise() if gated else None
    full_q, full_k = spe.filter(q, k, code, gate=spe.gate, gate_noise=noise)
    steps = [
        spe.filter(q[:, t : t + 1], k[:, t : t + 1], code, offset=t, gate=spe.gate, gate_noise=noise) for t in range(16)
    ]
    torch.testing.assert_close(torch.cat([s[0] for s in steps], 1), full_q, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.cat([s[1] for s in steps], 1), full_k, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter_and_the_layer_gate(kind):
    spe = KINDS[kind](gated=True)
    layer_gate = spe.make_gate()
    q, k = _qk(9, dtype=torch.float32)
    q.requires_grad_(), k.requires_grad_()
    code = spe.draw(9)
    qhat, khat = spe(q, k, code=code, gate=layer_gate)
    (torch.einsum("bmhr,bnhr->", qhat, khat) + qhat.square().sum()).backward()
    params = dict(spe.named_parameters())
    own_gate = params.pop("gate.gate")
    for name, p in list(params.items()) + [("layer gate", layer_gate.gate), ("q", q), ("k", k)]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert own_gate.grad is None  # a layer passing its gate does not train the module's own gate


@pytest.mark.parametrize("kind", KINDS)
def test_ungated_has_no_gate(kind):
    spe = KINDS[kind](gated=False)
    assert spe.make_gate() is None and spe.gate is None
    assert not any("gate" in name for name, _ in spe.named_parameters())


def test_sine_init_follows_the_official_recipe():
    torch.manual_seed(0)
    spe = SineSPE(8, 64, num_sines=10)
    assert spe.freqs.shape == spe.offsets.shape == spe.gains.shape == (8, 64, 10)
    assert -4.2 < spe.freqs.mean().item() < -3.8  # N(0,1) - 4
    f = spe.frequencies()
    assert (f > 0).all() and (f < 0.5).all()


def test_conv_init_is_positive_and_scaled():
    torch.manual_seed(0)
    spe = ConvSPE(8, 64, kernel_size=128)
    for phi in (spe.filter_q, spe.filter_k):
        assert phi.shape == (8, 64, 128)
        assert (phi >= 0).all() and phi.max() < 1 / (128 / 2) ** 0.5


@pytest.mark.parametrize(
    "bad",
    [
        lambda: SineSPE(2, 4, num_realizations=0),
        lambda: SineSPE(2, 4, num_sines=0),
        lambda: SineSPE(2, 4, num_sines=2.5),
        lambda: SineSPE(0, 4),
        lambda: SineSPE(2, 4, gated="yes"),
        lambda: ConvSPE(2, 4, kernel_size=0),
        lambda: ConvSPE(2, 4, num_realizations=-3),
        lambda: ConvSPE(2, -4),
    ],
)
def test_bad_constructor_arguments_raise(bad):
    with pytest.raises(ValueError, match="must be"):
        bad()


@pytest.mark.parametrize("kind", KINDS)
def test_bad_call_arguments_raise(kind):
    spe = KINDS[kind]()
    q, k = _qk(5, dtype=torch.float32)
    other = SineSPE(2, 4, num_realizations=4) if kind == "conv" else ConvSPE(2, 4, num_realizations=4)
    cases = {
        "q and k must have the same shape": lambda: spe(q, k[:, :4]),
        "heads=2 and head_dim=4": lambda: spe(q[..., :3], k[..., :3]),
        "must be a \\(batch, length, heads, head_dim\\)": lambda: spe(q[0], k[0]),
        "offset must be": lambda: spe(q, k, offset=-1),
        "draw a longer code": lambda: spe(q, k, code=spe.draw(4)),
        "code must be": lambda: spe(q, k, code=other.draw(5)),
        "gate must be": lambda: spe(q, k, gate=torch.nn.Linear(2, 2)),
        "code drawn by a gated module": lambda: spe(q, k, code=KINDS[kind](gated=False).draw(5), gate=spe.make_gate()),
        "lags must be a 1-D integer tensor": lambda: spe.kernel(torch.linspace(0, 1, 3)),
        "length must be": lambda: spe.draw(0),
    }
    for message, call in cases.items():
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_autocast_bfloat16_close_to_float32(kind):
    """Under autocast the matmul-heavy parts run in bf16 (as torch.matmul would): close to fp32."""
    spe = KINDS[kind](gated=True)
    q, k = _qk(40, dtype=torch.float32)
    q.requires_grad_()
    code = spe.draw(40)
    ref_q, ref_k = spe(q, k, code=code)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_q, got_k = spe(q, k, code=code)
    for got, ref in ((got_q, ref_q), (got_k, ref_k)):
        assert ((got.float() - ref).norm() / ref.norm()) < 3e-2
    grads = torch.autograd.grad(got_q.float().sum(), [q, *spe.parameters()], allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads) and grads[0].dtype == torch.float32


def test_unknown_sine_strategy_raises():
    spe = KINDS["sine"]()
    spe.strategy = "fastest"
    q, k = _qk(3, dtype=torch.float32)
    with pytest.raises(ValueError, match="strategy must be one of"):
        spe(q, k)
