"""Codes shared by the layers of one forward (shared_codes.py), for convSPE and sineSPE.

Each layer's backward hands its (x, g) to the node that made the codes, which forms dC for all layers
at once. Checked against the per-layer naive reference (gated codes built for each layer, broadcast
contraction, autograd) in float64, plus the bookkeeping: one build per forward, nothing stale after
a backward that skips the codes, a rebuild after the backward.
"""

from __future__ import annotations

import pytest
import torch

from spelab.nn.positional import ConvSPE, SineSPE
from spelab.nn.positional.naive import naive_spe

H, D, R = 2, 3, 5


def make(kind: str):
    torch.manual_seed(0)
    if kind == "conv":
        spe = ConvSPE(H, D, num_realizations=R, kernel_size=4)
    else:
        spe = SineSPE(H, D, num_realizations=R, num_sines=3)
        spe.strategy = "shared"
        with torch.no_grad():
            spe.freqs.add_(3.0)
    spe = spe.double()
    gates = [spe.make_gate().double() for _ in range(3)]
    return spe, gates


def per_layer_reference(spe, q, k, code, offset, gate):
    """One layer the plain way: its own gated codes (N, H, D, R), broadcast contraction, autograd."""
    return naive_spe(spe, q, k, code, offset, gate)


def loss_of(layer, q, k, gates):
    loss = 0
    for i, gate in enumerate(gates):
        a, b = layer(q, k, gate)
        loss = loss + (a * (i + 1)).sin().sum() + (b**2).sum() * (i + 1)
    return loss


def inputs(n: int = 9):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, n, H, D, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2)]


@pytest.mark.parametrize("kind,columns", [("conv", None), ("conv", 2), ("sine", None)])
def test_three_layers_sharing_a_code_match_per_layer_reference(kind, columns, monkeypatch):
    """columns: (head, feature) columns per chunk of convSPE's FFTs (None: all of a head at once)."""
    if columns is not None:
        from spelab.nn.positional import conv_fft

        monkeypatch.setattr(conv_fft, "FILTER_CHUNK_ELEMENTS", columns * (15 // 2 + 1) * R)  # n_fft = 15
    spe, gates = make(kind)
    q, k = inputs()
    code = spe.draw(12)
    leaves = [q, k, *(p for n, p in spe.named_parameters() if not n.startswith("gate.")), *(g.gate for g in gates)]
    got_out = [spe(q, k, code=code, offset=2, gate=g) for g in gates]
    ref_out = [per_layer_reference(spe, q, k, code, 2, g) for g in gates]
    for a, b in zip(got_out, ref_out):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad(loss_of(lambda q, k, g: spe(q, k, code=code, offset=2, gate=g), q, k, gates), leaves)
    ref = torch.autograd.grad(loss_of(lambda q, k, g: per_layer_reference(spe, q, k, code, 2, g), q, k, gates), leaves)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["conv", "sine"])
def test_codes_built_once_per_forward_and_rebuilt_after_backward(kind, monkeypatch):
    spe, gates = make(kind)
    q, k = inputs()
    code = spe.draw(9)
    builds = []
    original = type(spe)._build_shared
    monkeypatch.setattr(type(spe), "_build_shared", lambda self, *a: builds.append(a) or original(self, *a))
    loss = loss_of(lambda q, k, g: spe(q, k, code=code, gate=g), q, k, gates)
    assert len(builds) == 1  # three layers, one build
    loss.backward()
    loss_of(lambda q, k, g: spe(q, k, code=code, gate=g), q, k, gates)
    assert len(builds) == 2  # the spent entry is not reused


@pytest.mark.parametrize("kind", ["conv", "sine"])
def test_backward_that_skips_the_codes_leaves_nothing_for_the_next(kind):
    spe, gates = make(kind)
    q, k = inputs()
    params = [p for n, p in spe.named_parameters() if not n.startswith("gate.")]
    code = spe.draw(9)
    layer = lambda q, k, g: spe(q, k, code=code, gate=g)  # noqa: E731
    ref = torch.autograd.grad(loss_of(layer, q, k, gates), params)
    loss = loss_of(layer, q, k, gates)
    torch.autograd.grad(loss, [q], retain_graph=True)  # stops short of the codes
    got = torch.autograd.grad(loss, params, retain_graph=True)
    again = torch.autograd.grad(loss, params)
    for a, b, c in zip(got, again, ref):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind,strategy", [("conv", None), ("sine", "shared"), ("sine", "features"), ("sine", "code")])
def test_double_backward_through_spe_raises_instead_of_missing_terms(kind, strategy):
    spe, gates = make(kind)
    if strategy is not None:
        spe.strategy = strategy
    q, k = inputs()
    a, b = spe(q, k, gate=gates[0])
    with pytest.raises(RuntimeError, match="first order only"):
        torch.autograd.grad(a.square().sum() + b.sum(), [q], create_graph=True)
    (grad_q,) = torch.autograd.grad(a.square().sum() + b.sum(), [q])  # first order: fine
    assert torch.isfinite(grad_q).all()


def _sine_codes_ptr(code) -> int:
    return code.cache[1][0].codes[0].data_ptr()


def test_sine_code_memory_reused_across_steps_but_never_while_a_graph_can_read_it():
    """CodeBuffers: the next step reuses the codes' CPU memory once the previous step's backward has
    run; two forwards before one backward (a dual encoder) get separate memory and exact gradients."""
    spe, gates = make("sine")
    q, k = inputs()
    layer = lambda code: (lambda q, k, g: spe(q, k, code=code, gate=g))  # noqa: E731
    first = spe.draw(9)
    loss_of(layer(first), q, k, gates).backward()
    kept = spe.draw(9)  # a code the caller keeps holds its codes (through its cache)
    loss_of(layer(kept), q, k, gates).backward()
    assert _sine_codes_ptr(kept) != _sine_codes_ptr(first)
    used, first = _sine_codes_ptr(first), None  # a step's code is dropped after it
    second = spe.draw(9)
    loss_of(layer(second), q, k, gates).backward()
    assert _sine_codes_ptr(second) == used  # reused after the backward

    params = [spe.freqs, spe.offsets, spe.gains]
    a, b = spe.draw(9), spe.draw(9)
    loss = loss_of(layer(a), q, k, gates) + 2 * loss_of(layer(b), q, k, gates)
    assert _sine_codes_ptr(a) != _sine_codes_ptr(b)  # a's graph still reads a's codes
    got = torch.autograd.grad(loss, params)
    ref_loss = 0
    for code, weight in ((a, 1), (b, 2)):
        for i, gate in enumerate(gates):
            x, y = per_layer_reference(spe, q, k, code, 0, gate)
            ref_loss = ref_loss + weight * ((x * (i + 1)).sin().sum() + (y**2).sum() * (i + 1))
    for x, y in zip(got, torch.autograd.grad(ref_loss, params)):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)


def test_retained_graph_keeps_its_codes_when_a_new_forward_comes():
    spe, gates = make("sine")
    q, k = inputs()
    params = [spe.freqs, spe.offsets, spe.gains]
    old = spe.draw(9)
    loss = loss_of(lambda q, k, g: spe(q, k, code=old, gate=g), q, k, gates)
    first = torch.autograd.grad(loss, params, retain_graph=True)
    new = spe.draw(9)
    loss_of(lambda q, k, g: spe(q, k, code=new, gate=g), q, k, gates).backward()  # must not take old's memory
    again = torch.autograd.grad(loss, params)
    for x, y in zip(first, again):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_spe_modules_copy_and_pickle_with_their_buffers_left_behind():
    import copy
    import pickle

    spe, gates = make("sine")
    q, k = inputs()
    loss_of(lambda q, k, g: spe(q, k, gate=g), q, k, gates).backward()
    for clone in (copy.deepcopy(spe), pickle.loads(pickle.dumps(spe))):
        a = clone(q, k, code=spe.draw(9), gate=gates[0])
        assert a[0].shape == (2, 9, H, R)


@pytest.mark.parametrize("frozen", ["freqs", "gains", "offsets"])
def test_sine_shared_gradients_with_a_frozen_parameter(frozen):
    """The codes' backward computes only what is asked: with one parameter frozen, the others'
    gradients still match the per-layer reference."""
    spe, gates = make("sine")
    getattr(spe, frozen).requires_grad_(False)
    q, k = inputs()
    code = spe.draw(9)
    leaves = [p for n, p in spe.named_parameters() if p.requires_grad and not n.startswith("gate.")]
    got = torch.autograd.grad(loss_of(lambda q, k, g: spe(q, k, code=code, gate=g), q, k, gates), leaves)
    ref = torch.autograd.grad(loss_of(lambda q, k, g: per_layer_reference(spe, q, k, code, 0, g), q, k, gates), leaves)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
