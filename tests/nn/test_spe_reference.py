"""SPE's fast paths against the naive float64 references (nn/positional/naive.py) for the same
random draw: the references build the full (N, H, D, R) codes, broadcast to (B, N, H, D, R) and
convolve directly, exactly what the fast paths avoid.
"""

from __future__ import annotations

import pytest
import torch

from spelab.nn.positional import ConvSPE, SineSPE
from spelab.nn.positional.naive import apply_codes, spe_codes
from spelab.nn.positional.sine_spe import sine_project

# ---------------------------------------------------------------------------- fast path == naive


def make_spe(kind: str, gated: bool, kernel_size: int = 4):
    torch.manual_seed(0)
    if kind == "sine":
        spe = SineSPE(3, 4, num_realizations=6, num_sines=3, gated=gated)
        with torch.no_grad():
            spe.freqs.add_(3.0)
    else:
        spe = ConvSPE(3, 4, num_realizations=6, kernel_size=kernel_size, gated=gated)
    return spe.double()


PATHS = [("sine", "features"), ("sine", "code"), ("conv", None)]


@pytest.mark.parametrize("kind,strategy", PATHS)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("n,offset,length", [(13, 0, 13), (9, 5, 20), (1, 17, 18)])
def test_fast_path_equals_naive_for_the_same_draw(kind, strategy, gated, n, offset, length):
    """n=13/9 take the FFT path of convSPE, n=1 the direct one; both sine paths run in chunks of 4."""
    spe = make_spe(kind, gated)
    if kind == "sine":
        spe.chunk, spe.strategy = 4, strategy
    q = torch.randn(2, n, 3, 4, dtype=torch.float64)
    k = torch.randn(2, n, 3, 4, dtype=torch.float64)
    code = spe.draw(length)
    noise = spe.draw_gate_noise() if gated else None
    qhat, khat = spe.filter(q, k, code, offset=offset, gate=spe.gate, gate_noise=noise)
    qbar, kbar = spe_codes(spe, code, offset, n, gate=spe.gate, gate_noise=noise)
    ref_q, ref_k = apply_codes(q, k, qbar, kbar)
    torch.testing.assert_close(qhat, ref_q, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(khat, ref_k, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("strategy", ["features", "code"])
def test_sine_projection_gradients_match_finite_differences(strategy):
    """The hand-written backwards of the sine paths (several chunks, query and key sides)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f = (torch.rand(2, 3, 4, dtype=torch.float64, generator=g) * 0.5).requires_grad_()
    p = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, 3, 8, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, f, p, w: sine_project(x, f, p, w, 7, 2, strategy), (x, f, p, w))
    assert torch.autograd.gradcheck(lambda x, f, w: sine_project(x, f, None, w, 3, 3, strategy), (x, f, w))


def test_conv_noise_is_white_unit_variance():
    """The frequency-domain draw is white N(0, 1) noise in time (else the kernel's scale is off)."""
    torch.manual_seed(0)
    spe = ConvSPE(4, 8, num_realizations=64, kernel_size=3, gated=False).double()
    z = spe.draw(200).noise()  # (n_fft, H, D, R)
    count = z.numel()
    assert abs(z.mean().item()) < 5 / count**0.5
    assert abs(z.var().item() - 1) < 5 * (2 / count) ** 0.5
    lag1 = (z[1:] * z[:-1]).mean().item()  # whiteness
    assert abs(lag1) < 5 / count**0.5


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("kind,strategy", PATHS)
def test_float32_matches_float64_reference(kind, strategy, device):
    """Forward and gradients in fp32 (several sine chunks, conv FFT) against the CPU fp64 naive."""
    torch.manual_seed(0)
    spe = (
        SineSPE(4, 16, num_realizations=32, num_sines=5)
        if kind == "sine"
        else ConvSPE(4, 16, num_realizations=32, kernel_size=16)
    ).double()
    if kind == "sine":
        spe.chunk, spe.strategy = 64, strategy
    q = torch.randn(2, 300, 4, 16, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 300, 4, 16, dtype=torch.float64, requires_grad=True)
    code = spe.draw(320)
    qbar, kbar = spe_codes(spe, code, 7, 300, gate=spe.gate)
    ref_q, ref_k = apply_codes(q, k, qbar, kbar)
    weight = torch.randn_like(ref_q)
    ref_grads = torch.autograd.grad(((ref_q + ref_k) * weight).sum(), [q, *spe.parameters()])

    dev = spe.float().to(device)
    fields = {
        name: (
            val.to(device, torch.complex64 if val.is_complex() else torch.float32)
            if isinstance(val, torch.Tensor)
            else val
        )
        for name, val in vars(code).items()
    }
    qc, kc = (x.detach().float().to(device).requires_grad_() for x in (q, k))
    out_q, out_k = dev(qc, kc, code=type(code)(**fields), offset=7)
    grads = torch.autograd.grad(((out_q + out_k) * weight.float().to(device)).sum(), [qc, *dev.parameters()])
    for got, ref in [(out_q, ref_q), (out_k, ref_k), *zip(grads, ref_grads)]:
        rel = (got.double().cpu() - ref.detach()).norm() / ref.detach().norm()
        assert rel < 1e-4, rel


# ---------------------------------------------------------------------------- convSPE's FFT node


@pytest.mark.parametrize("n_fft,offset,n", [(16, 0, 13), (15, 3, 9), (12, 0, 1)])
def test_filter_noise_backward_matches_finite_differences(monkeypatch, n_fft, offset, n):
    """The hand-written backward of convSPE's codes (even and odd FFT sizes, an offset, several chunks)."""
    from spelab.nn.positional import conv_fft

    monkeypatch.setattr(conv_fft, "FILTER_CHUNK_ELEMENTS", 2 * (n_fft // 2 + 1) * 3)  # 2 columns per chunk
    g = torch.Generator().manual_seed(0)
    bins = n_fft // 2 + 1
    spectrum = torch.randn(bins, 2, 3, 3, dtype=torch.complex128, generator=g)
    spec = torch.randn(bins, 2, 3, dtype=torch.complex128, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: conv_fft.filter_noise(spectrum, s, offset, n, n_fft), (spec,))


@pytest.mark.parametrize("offset", [0, 5])
def test_conv_filter_gradients_match_direct_convolution(monkeypatch, offset):
    """Filter gradients through the FFT codes (in chunks) equal those of the direct convolution."""
    from spelab.nn.positional import conv_fft
    from spelab.nn.positional.naive import conv_codes

    monkeypatch.setattr(conv_fft, "FILTER_CHUNK_ELEMENTS", 64)  # one (head, feature) column per chunk
    spe = make_spe("conv", gated=False, kernel_size=5)
    code = spe.draw(offset + 11)
    weights = [torch.randn(11, 3, 4, 6, dtype=torch.float64) for _ in range(2)]

    def grads(codes):
        loss = sum((c * w).sum() for c, w in zip(codes, weights))
        return torch.autograd.grad(loss, [spe.filter_q, spe.filter_k])

    fast = grads(spe.codes(code, offset, 11))
    ref = grads(conv_codes(spe, code, offset, 11))
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
