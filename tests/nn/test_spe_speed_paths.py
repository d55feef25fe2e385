"""sineSPE shared path: codes built once per code and reused by every layer (sine_spe.py docstring).

Checked against the float64 naive reference (nn/positional/naive.py), against the chunked
"features" path, and by finite differences; plus the cache's invalidation rules.
"""

from __future__ import annotations


import pytest
import torch

from spelab.nn.positional import SineSPE
from spelab.nn.positional import sine_shared, sine_spe
from spelab.nn.positional.naive import naive_spe
from spelab.nn.positional.shared_codes import contract_shared
from spelab.nn.positional.sine_shared import build_shared_codes
from spelab.nn.positional.sine_spe import rotate_phase


def make_spe(gated: bool = True) -> SineSPE:
    torch.manual_seed(0)
    spe = SineSPE(3, 4, num_realizations=6, num_sines=3, gated=gated).double()
    with torch.no_grad():
        spe.freqs.add_(3.0)  # frequencies high enough that a wrong phase or position shows
    return spe


def qk(n: int, batch: int = 2, requires_grad: bool = False):
    g = torch.Generator().manual_seed(1)
    return [
        torch.randn(batch, n, 3, 4, dtype=torch.float64, generator=g, requires_grad=requires_grad) for _ in range(2)
    ]


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("n,offset,length", [(13, 0, 13), (5, 9, 20), (1, 17, 18)])
def test_shared_path_equals_naive(gated, n, offset, length):
    spe = make_spe(gated)
    spe.strategy = "shared"
    q, k = qk(n)
    code = spe.draw(length)
    got = spe(q, k, code=code, offset=offset)
    ref = naive_spe(spe, q, k, code, offset, spe.gate)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_auto_uses_shared_path_for_small_codes_and_chunks_large_ones(monkeypatch):
    spe = make_spe()
    q, k = qk(7)
    code = spe.draw(7)
    spe(q, k, code=code)
    assert code.cache is not None  # small: shared
    monkeypatch.setattr(sine_spe, "SHARED_CODE_ELEMENTS", 7 * 3 * 4 * 6 - 1)
    big = spe.draw(7)
    got = spe(q, k, code=big)
    assert big.cache is None  # over the budget: chunked path
    for a, b in zip(got, naive_spe(spe, q, k, big, 0, spe.gate)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_shared_gradients_match_features_path():
    """Gradients of q, k and every parameter (module and two layer gates) against the chunked path."""
    spe = make_spe()
    gates = [spe.make_gate().double() for _ in range(2)]
    q, k = qk(9, requires_grad=True)
    code = spe.draw(12)
    leaves = [q, k, *spe.parameters(), *(g.gate for g in gates)]
    grads = {}
    for strategy in ("shared", "features"):
        spe.strategy = strategy
        loss = 0
        for gate in gates:  # two layers sharing the code, as in the Transformer
            a, b = spe(q, k, code=code, offset=3, gate=gate)
            loss = loss + (a * torch.arange(a.numel(), dtype=a.dtype).view_as(a).cos()).sum() + (b**2).sum()
        grads[strategy] = torch.autograd.grad(loss, leaves, allow_unused=True)
    for a, b in zip(*grads.values()):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_shared_codes_and_contraction_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    f = (torch.rand(2, 3, 4, dtype=torch.float64, generator=g) * 0.5).requires_grad_()
    p = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, 3, 8, 5, dtype=torch.float64, generator=g, requires_grad=True)
    x = torch.randn(3, 6, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)

    def fn(x, f, p, w):
        shared, token = build_shared_codes(f, rotate_phase(w, p), w, 7, 6)
        # two "layers" read each code: their gradients meet in the one backward of the codes
        return (
            contract_shared(x, shared, token, 0),
            contract_shared(x.cos(), shared, token, 0),
            contract_shared(x, shared, token, 1),
        )

    assert torch.autograd.gradcheck(fn, (x, f, p, w))


def test_code_reused_across_layers_until_backward():
    spe = make_spe()
    spe.strategy = "shared"
    q, k = qk(5, requires_grad=True)
    code = spe.draw(5)
    a1, _ = spe(q, k, code=code)
    first = code.cache[1]
    spe(q, k, code=code, gate=spe.make_gate().double())
    assert code.cache[1][0] is first[0]  # second layer: same codes
    a1.sum().backward()
    assert code.cache[1][0].spent  # spent once its backward ran
    spe(q, k, code=code)
    assert code.cache[1][0] is not first[0]  # so the next forward rebuilds


def test_code_reused_for_several_steps_follows_parameter_updates():
    """One code for several optimizer steps: no stale codes, no backward through a freed graph."""
    spe = make_spe()
    spe.strategy = "shared"
    q, k = qk(6)
    code = spe.draw(6)
    opt = torch.optim.SGD(spe.parameters(), lr=0.5)
    for _ in range(3):
        a, b = spe(q, k, code=code)
        (a.square().sum() + b.sum()).backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            got = spe(q, k, code=code)
            ref = naive_spe(spe, q, k, code, 0, spe.gate)
        for x, y in zip(got, ref):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_offset_and_grad_mode_key_the_cache():
    spe = make_spe()
    spe.strategy = "shared"
    q, k = qk(4)
    code = spe.draw(10)
    with torch.no_grad():
        spe(q, k, code=code, offset=0)
        got = spe(q, k, code=code, offset=6)
    for x, y in zip(got, naive_spe(spe, q, k, code, 6, spe.gate)):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    a, _ = spe(q, k, code=code, offset=6)
    assert a.requires_grad  # not the no-grad entry


def test_shared_path_under_cpu_autocast_runs_in_bfloat16():
    torch.manual_seed(0)
    spe = SineSPE(2, 8, num_realizations=16, num_sines=4)
    q, k = (torch.randn(2, 20, 2, 8) for _ in range(2))
    code = spe.draw(20)
    ref = spe(q, k, code=code)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = spe(q, k, code=code)
    for x, y in zip(got, ref):
        assert x.dtype == torch.bfloat16
        assert ((x.float() - y).norm() / y.norm()) < 3e-2


def _layers_loss(spe, q, k, code, gates):
    loss = 0
    for i, gate in enumerate(gates):
        a, b = spe(q, k, code=code, offset=2, gate=gate)
        loss = loss + (a * (i + 1)).sin().sum() + (b**2).sum() * (i + 1)
    return loss


def test_backward_that_skips_the_codes_leaves_nothing_for_the_next():
    """autograd.grad w.r.t. q only runs the layers' backward but not the codes': what they handed over
    must not be counted again by a later full backward (retain_graph, one graph, two tasks)."""
    spe = make_spe()
    spe.strategy = "shared"
    gates = [spe.make_gate().double() for _ in range(3)]
    q, k = qk(8, requires_grad=True)
    params = [spe.freqs, spe.offsets, spe.gains, *(g.gate for g in gates)]
    code = spe.draw(10)
    ref = torch.autograd.grad(_layers_loss(spe, q, k, code, gates), params)
    loss = _layers_loss(spe, q, k, code, gates)
    torch.autograd.grad(loss, [q], retain_graph=True)
    got = torch.autograd.grad(loss, params, retain_graph=True)
    again = torch.autograd.grad(loss, params)  # a second full backward of the same graph
    for a, b, c in zip(got, again, ref):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("positions_per_chunk", [None, 1, 4])
def test_three_layers_gradients_match_float64_reference(monkeypatch, positions_per_chunk):
    """Every parameter gradient of three layers sharing one code against the naive float64 codes,
    with the backward in one chunk of positions or in several (11 positions: an uneven last chunk)."""
    if positions_per_chunk is not None:
        monkeypatch.setattr(sine_shared, "SHARED_BACKWARD_CHUNK", positions_per_chunk * 3 * 4 * 6)
    spe = make_spe()
    gates = [spe.make_gate().double() for _ in range(3)]
    q, k = qk(11, requires_grad=True)
    code = spe.draw(13)
    leaves = [q, k, *spe.parameters(), *(g.gate for g in gates)]

    def reference_loss():
        loss = 0
        for i, gate in enumerate(gates):
            a, b = naive_spe(spe, q, k, code, 2, gate)
            loss = loss + (a * (i + 1)).sin().sum() + (b**2).sum() * (i + 1)
        return loss

    spe.strategy = "shared"
    got = torch.autograd.grad(_layers_loss(spe, q, k, code, gates), leaves, allow_unused=True)
    ref = torch.autograd.grad(reference_loss(), leaves, allow_unused=True)
    for a, b in zip(got, ref):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_shared_path_gradients_under_cpu_autocast():
    torch.manual_seed(0)
    spe = SineSPE(2, 8, num_realizations=16, num_sines=4)
    spe.strategy = "shared"
    q, k = (torch.randn(2, 20, 2, 8, requires_grad=True) for _ in range(2))
    code = spe.draw(20)
    ref = torch.autograd.grad(sum(x.square().sum() for x in spe(q, k, code=code)), list(spe.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = spe(q, k, code=code)
    got = torch.autograd.grad(sum(x.float().square().sum() for x in out), list(spe.parameters()))
    for a, b in zip(got, ref):
        assert a.dtype == torch.float32
        assert ((a - b).norm() / b.norm()) < 5e-2
