"""Naive references of SPE beside its fast paths (as fla keeps naive.py beside chunk.py).

The definitions of the paper (Liutkus et al., ICML 2021, §2-3) written the plain way, for tests in
float64 against sine_spe.py, sine_shared.py, conv_spe.py and `kernel()`: the whole codes Q̄, K̄
(N, H, D, R) are built, convSPE convolves the time-domain noise directly, q̂ and k̂ are the broadcast
product (B, N, H, D, 1) * (1, N, H, D, R) summed over D, and the kernels are the closed-form sums.
O(B·N·H·D·R) memory and plain autograd: slow, but each line is the formula.

Conventions of the fast paths: codes carry (R·D)^(-1/4) on each side; with a gate δ = sigmoid(g),
Q̄' = sqrt(1-δ) Q̄ + sqrt(δ) ε (and the same ε for K̄'), so that P̃ = (1-δ) P + δ.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from spelab.nn.positional.conv_spe import ConvCode, ConvSPE
from spelab.nn.positional.sine_spe import SineCode, SineSPE
from spelab.nn.positional.spe import SPEGate, StochasticPositionalEncoding


def sine_codes(spe: SineSPE, code: SineCode, offset: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ungated Q̄, K̄ (N, H, D, R) at positions offset ... offset+n-1.

    Q̄[m] = Σ_k λ_k (cos(2π f_k m + θ_k) Z_k + sin(2π f_k m + θ_k) Z_{K+k}), K̄ the same with θ = 0,
    f = sigmoid(freqs)/2, λ = softplus(gains), Z = code.noise (H, D, 2K, R).
    """
    f = torch.sigmoid(spe.freqs) / 2
    lam = F.softplus(spe.gains)
    t = torch.arange(offset, offset + n, dtype=f.dtype, device=f.device)[:, None, None, None]
    angle_q = 2 * math.pi * f[None] * t + spe.offsets[None]
    angle_k = 2 * math.pi * f[None] * t
    omega_q = torch.cat((torch.cos(angle_q), torch.sin(angle_q)), -1)  # (N, H, D, 2K)
    omega_k = torch.cat((torch.cos(angle_k), torch.sin(angle_k)), -1)
    z = code.noise.to(f.dtype) * torch.cat((lam, lam), -1)[..., None]  # (H, D, 2K, R)
    qbar = torch.einsum("nhdj,hdjr->nhdr", omega_q, z) * spe.code_scale
    kbar = torch.einsum("nhdj,hdjr->nhdr", omega_k, z) * spe.code_scale
    return qbar, kbar


def conv_codes(spe: ConvSPE, code: ConvCode, offset: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ungated Q̄, K̄ (N, H, D, R): the white noise z (time domain) cross-correlated with each filter,
    Q̄[m] = Σ_j φQ[j] z[m + j], by a direct depthwise convolution."""
    z = torch.fft.irfft(code.spectrum, n=code.n_fft, dim=0, norm="ortho")  # (n_fft, H, D, R)
    _, heads, dim, num_realizations = z.shape
    p = spe.kernel_size
    window = z[offset : offset + n + p - 1].permute(3, 1, 2, 0).reshape(num_realizations, heads * dim, n + p - 1)
    out = []
    for phi in (spe.filter_q, spe.filter_k):
        y = F.conv1d(window, phi.to(z.dtype).reshape(heads * dim, 1, p), groups=heads * dim)  # (R, H·D, n)
        out.append(y.reshape(num_realizations, heads, dim, n).permute(3, 1, 2, 0) * spe.code_scale)
    return out[0], out[1]


def spe_codes(
    spe: StochasticPositionalEncoding,
    code: Any,
    offset: int,
    n: int,
    gate: SPEGate | None = None,
    gate_noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Q̄', K̄' (N, H, D, R) of a SineSPE or ConvSPE, gated by `gate` (with ε = gate_noise, default
    code.gate_noise) when a gate is given."""
    if isinstance(spe, SineSPE):
        qbar, kbar = sine_codes(spe, code, offset, n)
    elif isinstance(spe, ConvSPE):
        qbar, kbar = conv_codes(spe, code, offset, n)
    else:
        raise ValueError(f"spe_codes: spe must be a SineSPE or ConvSPE, got {type(spe).__name__}")
    if gate is None:
        return qbar, kbar
    eps = code.gate_noise if gate_noise is None else gate_noise  # (H, D, R)
    delta = gate.delta()[..., None]  # (H, D, 1)
    return (
        torch.sqrt(1 - delta) * qbar + torch.sqrt(delta) * eps,
        torch.sqrt(1 - delta) * kbar + torch.sqrt(delta) * eps,
    )


def apply_codes(
    q: torch.Tensor, k: torch.Tensor, qbar: torch.Tensor, kbar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """q̂ = Σ_d q_d Q̄_d and k̂ = Σ_d k_d K̄_d: (B, N, H, D) and (N, H, D, R) -> (B, N, H, R)."""
    return (q[..., None] * qbar[None]).sum(-2), (k[..., None] * kbar[None]).sum(-2)


def naive_spe(
    spe: StochasticPositionalEncoding,
    q: torch.Tensor,
    k: torch.Tensor,
    code: Any,
    offset: int = 0,
    gate: SPEGate | None = None,
    gate_noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What `spe.filter(q, k, code, offset, gate, gate_noise)` computes, from the materialised codes."""
    return apply_codes(q, k, *spe_codes(spe, code, offset, q.shape[1], gate, gate_noise))


def sine_kernel(spe: SineSPE, lags: torch.Tensor) -> torch.Tensor:
    """P(τ) = (1/2K) Σ_k λ_k² cos(2π f_k τ + θ_k), (H, D, len(lags)), ungated."""
    f = torch.sigmoid(spe.freqs) / 2
    lam = F.softplus(spe.gains)
    tau = lags.to(f.dtype)[:, None, None, None]  # (L, 1, 1, 1)
    terms = lam**2 * torch.cos(2 * math.pi * f * tau + spe.offsets)  # (L, H, D, K)
    return terms.sum(-1).permute(1, 2, 0) / (2 * spe.num_sines)


def conv_kernel(spe: ConvSPE, lags: torch.Tensor) -> torch.Tensor:
    """P(τ) = Σ_j φQ[j] φK[j + τ] over the j with both indices in [0, P), (H, D, len(lags)), ungated."""
    p = spe.kernel_size
    out = spe.filter_q.new_zeros(spe.num_heads, spe.head_dim, len(lags))
    for i, tau in enumerate(lags.tolist()):
        for j in range(p):
            if 0 <= j + tau < p:
                out[:, :, i] += spe.filter_q[:, :, j] * spe.filter_k[:, :, j + tau]
    return out


def naive_kernel(spe: StochasticPositionalEncoding, lags: torch.Tensor, gate: SPEGate | None = None) -> torch.Tensor:
    """What `spe.kernel(lags, gate)` computes: P̃ = (1-δ) P + δ with `gate`, else the module's own
    gate (P when the module is not gated)."""
    gate = spe.gate if gate is None else gate
    if isinstance(spe, SineSPE):
        raw = sine_kernel(spe, lags)
    elif isinstance(spe, ConvSPE):
        raw = conv_kernel(spe, lags)
    else:
        raise ValueError(f"naive_kernel: spe must be a SineSPE or ConvSPE, got {type(spe).__name__}")
    if gate is None:
        return raw
    delta = gate.delta()[..., None]
    return (1 - delta) * raw + delta
