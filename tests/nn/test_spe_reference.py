"""Naive float64 references for SPE (written from docs/spe.md, independently of the fast paths),
and the tests that the fast paths equal them for the same random draw.

They build the full (N, H, D, R) codes, broadcast to (B, N, H, D, R) and convolve directly: exactly
what the fast paths avoid.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def sine_codes(spe, code, offset: int, n: int, gate_noise=None, gate=None):
    """Q̄', K̄' (N, H, D, R) at positions offset..offset+n-1, gated if gate is given."""
    f = torch.sigmoid(spe.freqs) / 2
    lam = F.softplus(spe.gains)
    t = torch.arange(offset, offset + n, dtype=torch.float64)[:, None, None, None]
    a_q = 2 * math.pi * f[None] * t + spe.offsets[None]
    a_k = 2 * math.pi * f[None] * t
    om_q = torch.cat((torch.cos(a_q), torch.sin(a_q)), -1)  # (N, H, D, 2K)
    om_k = torch.cat((torch.cos(a_k), torch.sin(a_k)), -1)
    z = code.noise * torch.cat((lam, lam), -1)[..., None]  # (H, D, 2K, R)
    scale = (spe.num_realizations * spe.head_dim) ** -0.25
    qbar = torch.einsum("nhdj,hdjr->nhdr", om_q, z) * scale
    kbar = torch.einsum("nhdj,hdjr->nhdr", om_k, z) * scale
    return _gated(qbar, kbar, gate, gate_noise)


def conv_codes(spe, code, offset: int, n: int, gate_noise=None, gate=None):
    """Direct depthwise cross-correlation of the time-domain noise with the two filters."""
    z = torch.fft.irfft(code.spectrum, n=code.n_fft, dim=0, norm="ortho")  # (n_fft, H, D, R) white noise
    _, h, d, r = z.shape
    p = spe.kernel_size
    seg = z[offset : offset + n + p - 1].permute(3, 1, 2, 0).reshape(r, h * d, n + p - 1)
    out = []
    for phi in (spe.filter_q, spe.filter_k):
        y = F.conv1d(seg, phi.reshape(h * d, 1, p), groups=h * d)  # (R, H*D, n)
        out.append(y.reshape(r, h, d, n).permute(3, 1, 2, 0) * (r * d) ** -0.25)
    return _gated(out[0], out[1], gate, gate_noise)


def _gated(qbar, kbar, gate, gate_noise):
    if gate is None:
        return qbar, kbar
    delta = torch.sigmoid(gate.gate)[..., None]  # (H, D, 1)
    return (
        torch.sqrt(1 - delta) * qbar + torch.sqrt(delta) * gate_noise,
        torch.sqrt(1 - delta) * kbar + torch.sqrt(delta) * gate_noise,
    )


def apply_codes(q, k, qbar, kbar):
    """The official broadcast filter: (B, N, H, D, 1) * (1, N, H, D, R), summed over D."""
    return (q[..., None] * qbar[None]).sum(-2), (k[..., None] * kbar[None]).sum(-2)


def sine_kernel_closed_form(spe, lags) -> np.ndarray:
    """(1/2K) Σ_k softplus(g)² cos(2π sigmoid(w)/2 τ + θ), with explicit loops in numpy."""
    fr = spe.freqs.detach().double().numpy()
    th = spe.offsets.detach().double().numpy()
    g = spe.gains.detach().double().numpy()
    h_, d_, k_ = fr.shape
    out = np.zeros((h_, d_, len(lags)))
    for h in range(h_):
        for d in range(d_):
            for i, tau in enumerate(lags):
                acc = 0.0
                for k in range(k_):
                    f = 1.0 / (1.0 + math.exp(-fr[h, d, k])) / 2
                    lam = math.log1p(math.exp(g[h, d, k]))
                    acc += lam**2 * math.cos(2 * math.pi * f * tau + th[h, d, k])
                out[h, d, i] = acc / (2 * k_)
    return out


def conv_kernel_direct(spe, lags) -> np.ndarray:
    """Σ_j φQ[j] φK[j + τ] over the j with both indices inside [0, P)."""
    fq = spe.filter_q.detach().double().numpy()
    fk = spe.filter_k.detach().double().numpy()
    h_, d_, p = fq.shape
    out = np.zeros((h_, d_, len(lags)))
    for i, tau in enumerate(lags):
        for j in range(p):
            if 0 <= j + tau < p:
                out[:, :, i] += fq[:, :, j] * fk[:, :, j + tau]
    return out


def gate_mix(kernel: np.ndarray, gate) -> np.ndarray:
    delta = 1.0 / (1.0 + np.exp(-gate.gate.detach().double().numpy()))[..., None]
    return (1 - delta) * kernel + delta


# ---------------------------------------------------------------------------- fast path == naive
import pytest  # noqa: E402

from spelab.nn.positional import ConvSPE, SineSPE  # noqa: E402
from spelab.nn.positional.sine_spe import sine_project  # noqa: E402

NAIVE = {"sine": sine_codes, "conv": conv_codes}


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
    qbar, kbar = NAIVE[kind](spe, code, offset, n, gate_noise=noise, gate=spe.gate)
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
    qbar, kbar = NAIVE[kind](spe, code, 7, 300, gate_noise=code.gate_noise, gate=spe.gate)
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
