"""sineSPE: codes built from K learned sinusoids per (head, feature) and shared Gaussian noise.

With f = sigmoid(freqs)/2 (cycles per position), θ = offsets, λ = softplus(gains) (all (H, D, K)):
  Ω_q[m] = [cos(2π f m + θ), sin(2π f m + θ)],  Ω_k[n] = [cos(2π f n), sin(2π f n)]   (2K features)
  Q̄[m] = Ω_q[m] diag(λ̃) Z,  K̄[n] = Ω_k[n] diag(λ̃) Z,  Z ~ N(0, 1/(2K)) of shape (H, D, 2K, R)
so that E[Q̄[m] K̄[n]] = P(m - n) = (1/2K) Σ_k λ_k² cos(2π f_k (m - n) + θ_k) (docs/spe.md, "sineSPE").
Features are laid out [cos_1..cos_K, sin_1..sin_K] (the official code interleaves them; Z is i.i.d.,
so the distribution is the same).

Fast paths: the whole code Q̄ (N, H, D, R) is never built, and nothing but q, k and the (small)
parameters is saved for backward; both paths work in chunks of positions and recompute in backward.
- "features": q̂ = Σ_{d,j} (q_d Ω_q[d, j]) W[d, j, :] with W = λ̃ Z (H, D, 2K, R): the features
  q ⊗ Ω are contracted with W by one matmul per head (temporaries B·D·2K per position and head).
- "code": a chunk of the code C = Ω W by one batched matmul, then one (B × D)(D × R) matmul per
  (head, position) (temporaries D·R per position and head, independent of the batch).
`sine_project(strategy="auto")` picks the one with the smaller temporaries. A code is just the noise
Z (length-independent), so `draw` is cheap and positions can be computed at any offset.

Shared path (SineSPE.strategy "auto" when the code is small, or "shared"; sine_shared.py): the
ungated codes C_q = Ω_k R(θ) W and C_k = Ω_k W (N, H, D, R) are built once per code and positions
and reused by every layer (the gate sqrt(1-δ) scales q and k instead of W; the phase θ is a rotation
R(θ) of each (cos, sin) pair, folded into the small weight, so q and k share one Ω). Each layer then
costs one (B × D)(D × R) contraction per (position, head); the layers' gradients of C are formed by
one matmul in one backward of Ω and C. On a CPU the compiled kernels (nn/kernels, docs/kernels.md) do
the build, the contractions and that backward for float32 codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from spelab.nn.kernels import cpu_kernels, use_triton
from spelab.nn.positional._checks import check_positive_int
from spelab.nn.positional.shared_codes import SharedCodes, first_order_only
from spelab.nn.positional.sine_features import sine_features
from spelab.nn.positional.sine_shared import (  # noqa: F401 (rotate_phase: part of this module's API)
    CodeBuffers,
    build_shared_codes,
    build_shared_codes_compiled,
    rotate_phase,
)
from spelab.nn.positional.spe import DEFAULT_NUM_REALIZATIONS, StochasticPositionalEncoding

# elements of the largest temporary per chunk of positions (2^25 fp32 = 128 MiB)
CHUNK_ELEMENTS = 2**25
STRATEGIES = ("features", "code")
MODULE_STRATEGIES = ("auto", "shared") + STRATEGIES
# the shared path keeps C_q, C_k (N·H·D·R each) for backward: only up to this size, so that memory per
# token stays flat in N (longer inputs take the chunked, recomputing paths)
SHARED_CODE_ELEMENTS = 2**25


@dataclass
class SineCode:
    """A sineSPE code: noise Z (H, D, 2K, R) ~ N(0, 1/(2K)), valid for positions 0 ... length-1,
    and the gate noise ε (H, D, R) when the module is gated."""

    noise: torch.Tensor
    length: int
    gate_noise: torch.Tensor | None = None
    # (key, (SharedCodes, token)) of the shared path: reused by the layers of one forward (_shared_codes)
    cache: Any = field(default=None, repr=False, compare=False)


def _chunk(batch: int, heads: int, per_position: int, n: int, chunk: int | None) -> int:
    """Positions per chunk: at most `chunk` (default: CHUNK_ELEMENTS per temporary), equal-sized."""
    if chunk is None:
        chunk = CHUNK_ELEMENTS // max(1, batch * heads * per_position)
    chunk = max(1, min(n, chunk))
    pieces = -(-n // chunk)
    return -(-n // pieces)  # no tiny last chunk


def _features_times(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """u = x ⊗ Ω written straight into a contiguous (H, B·n, D·2K) buffer (one pass, no reshape copy)."""
    heads, batch, n, dim = x.shape
    u = torch.empty(heads, batch, n, dim, omega.shape[-1], device=x.device, dtype=x.dtype)
    torch.mul(x[..., None], omega[:, None], out=u)
    return u.view(heads, batch * n, -1)


class _SineProjection(torch.autograd.Function):
    """x (B, N, H, D) -> (B, N, H, R): Σ_{d,j} x_d Ω[d, j] W[d, j, :], Ω from (freq, phase)."""

    @staticmethod
    def forward(ctx, x, freq, phase, weight, offset, chunk):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        two_k, num_realizations = weight.shape[-2], weight.shape[-1]
        step = _chunk(batch, heads, dim * two_k, n, chunk)
        with torch.autocast(x.device.type, enabled=False):
            xh = x.permute(2, 0, 1, 3).contiguous()  # (H, B, N, D)
            w = weight.to(x.dtype).reshape(heads, dim * two_k, num_realizations)
            out = x.new_empty(heads, batch, n, num_realizations)
            for s in range(0, n, step):
                e = min(n, s + step)
                omega = sine_features(freq, phase, offset + s, e - s, x.dtype)  # (H, n, D, 2K)
                u = _features_times(xh[:, :, s:e], omega)
                out[:, :, s:e] = torch.matmul(u, w).view(heads, batch, e - s, num_realizations)
        ctx.save_for_backward(x, freq, phase, weight)
        ctx.offset, ctx.step = offset, step
        return out.permute(1, 2, 0, 3)

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        x, freq, phase, weight = ctx.saved_tensors
        need_x, need_f, need_p, need_w = ctx.needs_input_grad[:4]
        need_p = need_p and phase is not None
        batch, n, heads, dim = x.shape
        two_k, num_realizations = weight.shape[-2], weight.shape[-1]
        k = two_k // 2
        xh = x.permute(2, 0, 1, 3).contiguous()
        gh = grad.to(x.dtype).permute(2, 0, 1, 3).contiguous()  # (H, B, N, R)
        w = weight.to(x.dtype).reshape(heads, dim * two_k, num_realizations)
        dx = torch.empty_like(xh) if need_x else None
        acc = torch.promote_types(x.dtype, torch.float32)  # parameter gradients sum over all positions
        dw = torch.zeros(w.shape, dtype=acc, device=x.device) if need_w else None
        dfreq = torch.zeros(heads, dim, k, dtype=acc, device=x.device) if need_f else None
        dphase = torch.zeros(heads, dim, k, dtype=acc, device=x.device) if need_p else None
        for s in range(0, n, ctx.step):
            e = min(n, s + ctx.step)
            rows = batch * (e - s)
            omega = sine_features(freq, phase, ctx.offset + s, e - s, x.dtype)  # (H, n, D, 2K)
            gc = gh[:, :, s:e].reshape(heads, rows, num_realizations)
            if need_x or need_f or need_p:
                g_feat = torch.matmul(gc, w.transpose(1, 2)).view(heads, batch, e - s, dim, two_k)
                if need_x:
                    dx[:, :, s:e] = (g_feat * omega[:, None]).sum(-1)
                if need_f or need_p:
                    d_omega = (g_feat * xh[:, :, s:e, :, None]).sum(1)  # (H, n, D, 2K)
                    cos, sin = omega.split(k, dim=-1)
                    d_cos, d_sin = d_omega.split(k, dim=-1)
                    d_angle = d_sin * cos - d_cos * sin  # (H, n, D, K)
                    if need_p:
                        dphase += d_angle.sum(1)
                    if need_f:
                        t = torch.arange(ctx.offset + s, ctx.offset + e, device=x.device, dtype=acc)
                        dfreq += (2 * math.pi) * torch.einsum("hndk,n->hdk", d_angle.to(acc), t)
            if need_w:
                dw += torch.matmul(_features_times(xh[:, :, s:e], omega).transpose(1, 2), gc)
        return (
            dx.permute(1, 2, 0, 3) if need_x else None,
            dfreq.to(freq.dtype) if need_f else None,
            dphase.to(phase.dtype) if need_p else None,
            dw.view(weight.shape).to(weight.dtype) if need_w else None,
            None,
            None,
        )


class _SineCodeProjection(torch.autograd.Function):
    """Same map as _SineProjection, through a transient chunk of the code instead of x ⊗ Ω.

    Per chunk of positions: C = Ω W (H, D, n, R) by one batched matmul, then q̂ = Σ_d x_d C_d by one
    (B × D)(D × R) matmul per (head, position); the backward recomputes C. Everything is a matmul
    (no broadcast elementwise passes), and the temporaries do not grow with the batch.
    """

    @staticmethod
    def forward(ctx, x, freq, phase, weight, offset, chunk):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        num_realizations = weight.shape[-1]
        step = _chunk(1, heads, dim * num_realizations, n, chunk)
        with torch.autocast(x.device.type, enabled=False):
            xh = x.permute(2, 1, 0, 3).contiguous()  # (H, N, B, D)
            w = weight.to(x.dtype)
            out = x.new_empty(heads, n, batch, num_realizations)
            for s in range(0, n, step):
                e = min(n, s + step)
                omega = sine_features(freq, phase, offset + s, e - s, x.dtype, position_axis=2)
                code = torch.matmul(omega, w)  # (H, D, n, R)
                for h in range(heads):
                    torch.bmm(xh[h, s:e], code[h].transpose(0, 1), out=out[h, s:e])
        ctx.save_for_backward(x, freq, phase, weight)
        ctx.offset, ctx.step = offset, step
        return out.permute(2, 1, 0, 3)

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        x, freq, phase, weight = ctx.saved_tensors
        need_x, need_f, need_p, need_w = ctx.needs_input_grad[:4]
        need_p = need_p and phase is not None
        need_code = need_f or need_p or need_w
        batch, n, heads, dim = x.shape
        k, num_realizations = weight.shape[-2] // 2, weight.shape[-1]
        xh = x.permute(2, 1, 0, 3).contiguous()  # (H, N, B, D)
        gh = grad.to(x.dtype).permute(2, 1, 0, 3).contiguous()  # (H, N, B, R)
        w = weight.to(x.dtype)
        acc = torch.promote_types(x.dtype, torch.float32)
        dx = torch.empty_like(xh) if need_x else None
        dw = torch.zeros(w.shape, dtype=acc, device=x.device) if need_w else None
        dfreq = torch.zeros(heads, dim, k, dtype=acc, device=x.device) if need_f else None
        dphase = torch.zeros(heads, dim, k, dtype=acc, device=x.device) if need_p else None
        for s in range(0, n, ctx.step):
            e = min(n, s + ctx.step)
            omega = sine_features(freq, phase, ctx.offset + s, e - s, x.dtype, position_axis=2)
            code = torch.matmul(omega, w) if need_x else None  # (H, D, n, R)
            d_code = x.new_empty(heads, dim, e - s, num_realizations) if need_code else None
            for h in range(heads):
                if need_x:
                    torch.bmm(gh[h, s:e], code[h].permute(1, 2, 0), out=dx[h, s:e])
                if need_code:
                    d_code[h].transpose(0, 1).copy_(torch.bmm(xh[h, s:e].transpose(1, 2), gh[h, s:e]))
            if need_w:
                dw += torch.matmul(omega.transpose(-1, -2), d_code)
            if need_f or need_p:
                d_omega = torch.matmul(d_code, w.transpose(-1, -2))  # (H, D, n, 2K)
                cos, sin = omega.split(k, dim=-1)
                d_cos, d_sin = d_omega.split(k, dim=-1)
                d_angle = (d_sin * cos - d_cos * sin).to(acc)  # (H, D, n, K)
                if need_p:
                    dphase += d_angle.sum(2)
                if need_f:
                    t = torch.arange(ctx.offset + s, ctx.offset + e, device=x.device, dtype=acc)
                    dfreq += (2 * math.pi) * torch.einsum("hdnk,n->hdk", d_angle, t)
        return (
            dx.permute(2, 1, 0, 3) if need_x else None,
            dfreq.to(freq.dtype) if need_f else None,
            dphase.to(phase.dtype) if need_p else None,
            dw.to(weight.dtype) if need_w else None,
            None,
            None,
        )


def sine_project(
    x: torch.Tensor,
    freq: torch.Tensor,
    phase: torch.Tensor | None,
    weight: torch.Tensor,
    offset: int = 0,
    chunk: int | None = None,
    strategy: str = "auto",
) -> torch.Tensor:
    """Fast q̂ (or k̂ with phase=None): x (B, N, H, D), freq/phase (H, D, K), weight (H, D, 2K, R).

    strategy: "features" (x ⊗ Ω then one matmul with W), "code" (a transient chunk of the code
    C = Ω W, then per-position matmuls) or "auto": the one with the smaller temporaries, x ⊗ Ω
    (B·D·2K per position and head) against the code chunk (D·R). Both compute the same function.
    "auto" takes the fused Triton kernels instead when SPELAB_KERNELS selects them (nn/kernels).
    Measured on an H100 (fp32, H=8, D=R=64, K=10): N=16k, B=2: features 42 ms, code 62 ms (fwd+bwd,
    q and k); N=1k, B=16: features 19 ms, code 6.4 ms.

    Under autocast the features and matmuls run in the autocast dtype (as torch.matmul would); the
    angles are always computed in float32 or wider, and parameter gradients are accumulated in float32.
    """
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        x = x.to(torch.get_autocast_dtype(device_type))
    if strategy == "auto" and use_triton(x):
        from spelab.nn.kernels.sine_triton import triton_sine_project  # triton is optional: import on use

        return triton_sine_project(x, freq, phase, weight, offset)
    if strategy == "auto":
        strategy = "code" if x.shape[0] * weight.shape[-2] > weight.shape[-1] else "features"
    if strategy not in STRATEGIES:
        raise ValueError(f"sine_project: strategy must be one of {STRATEGIES + ('auto',)}, got {strategy!r}")
    function = _SineCodeProjection if strategy == "code" else _SineProjection
    return function.apply(x, freq, phase, weight, offset, chunk)


class SineSPE(StochasticPositionalEncoding):
    """Sinusoidal SPE: R = num_realizations codes from num_sines (K) sinusoids per (head, feature)."""

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        num_realizations: int = DEFAULT_NUM_REALIZATIONS,
        num_sines: int = 10,
        gated: bool = True,
    ) -> None:
        super().__init__(num_heads, head_dim, num_realizations, gated)
        check_positive_int("SineSPE", num_sines=num_sines)
        self.num_sines = num_sines
        shape = (num_heads, head_dim, num_sines)
        # official init: N(0,1); frequencies biased low (periods ~40-300 positions); gains rescaled
        self.freqs = torch.nn.Parameter(torch.randn(shape) - 4.0)
        self.offsets = torch.nn.Parameter(torch.randn(shape))
        gains = torch.randn(shape)
        self.gains = torch.nn.Parameter(2.0 * gains / gains.norm(dim=-1, keepdim=True).sqrt())
        self.chunk: int | None = None  # positions per chunk of the fast path; None: automatic
        self.strategy = "auto"  # "shared" (small codes), else as sine_project; see the module docstring
        self._code_buffers = CodeBuffers()  # CPU memory of the shared codes, reused across forwards

    def frequencies(self) -> torch.Tensor:
        """f = sigmoid(freqs) / 2, cycles per position in (0, 0.5): (H, D, K)."""
        return torch.sigmoid(self.freqs) / 2

    def amplitudes(self) -> torch.Tensor:
        """λ = softplus(gains): (H, D, K)."""
        return F.softplus(self.gains)

    def _draw(self, length: int, device: torch.device) -> SineCode:
        """A code for positions 0 ... length-1 (its noise does not depend on the length)."""
        two_k = 2 * self.num_sines
        noise = torch.randn(
            self.num_heads, self.head_dim, two_k, self.num_realizations, device=device, dtype=self._reference().dtype
        ) / math.sqrt(two_k)
        return SineCode(noise=noise, length=length)

    def mixing_weight(self, code: SineCode, keep: torch.Tensor | None = None) -> torch.Tensor:
        """W = λ̃ Z (R·D)^(-1/4) [· sqrt(1-δ)]: (H, D, 2K, R)."""
        lam = self.amplitudes()
        amp = torch.cat((lam, lam), dim=-1) * self.code_scale
        if keep is not None:
            amp = amp * keep[..., None]
        return code.noise.to(amp.dtype) * amp[..., None]

    def _code_length(self, code: SineCode) -> int:
        expected = (self.num_heads, self.head_dim, 2 * self.num_sines, self.num_realizations)
        if not isinstance(code, SineCode) or tuple(code.noise.shape) != expected:
            raise ValueError(
                f"SineSPE: code must be a SineCode from this module's draw() with noise of "
                f"shape {expected}, got {code!r:.200}"
            )
        return code.length

    def _project(self, q, k, code, offset, keep, mix):
        strategy = self.strategy
        if strategy not in MODULE_STRATEGIES:
            raise ValueError(f"SineSPE: strategy must be one of {MODULE_STRATEGIES}, got {strategy!r}")
        n = q.shape[1]
        if strategy == "shared" or (
            strategy == "auto"
            and self.chunk is None
            and not use_triton(q)
            and n * self.num_heads * self.head_dim * self.num_realizations <= SHARED_CODE_ELEMENTS
        ):
            return self._project_shared(q, k, code, offset, keep, mix)
        weight = self.mixing_weight(code, keep)
        freq = self.frequencies()
        qhat = sine_project(q, freq, self.offsets, weight, offset, self.chunk, strategy)
        khat = sine_project(k, freq, None, weight, offset, self.chunk, strategy)
        return self._add_mix(q, k, qhat, khat, mix)

    def _code_tensor(self, code: SineCode) -> torch.Tensor:
        return code.noise

    def _build_shared(self, code: SineCode, offset: int, n: int) -> tuple[SharedCodes, torch.Tensor | None]:
        noise = code.noise.to(self._reference().device)
        kernels = cpu_kernels(noise, self.num_realizations) if noise.dtype == self._reference().dtype else None
        if kernels is not None:  # the compiled CPU kernels (float32, R a multiple of 16)
            return build_shared_codes_compiled(
                kernels,
                self.frequencies(),
                self.amplitudes(),
                self.offsets,
                noise.contiguous(),
                self.code_scale,
                offset,
                n,
                self._code_buffers,
            )
        weight = self.mixing_weight(code).to(self._reference().device)
        return build_shared_codes(
            self.frequencies(), rotate_phase(weight, self.offsets), weight, offset, n, self._code_buffers
        )

    def _raw_kernel(self, lags: torch.Tensor) -> torch.Tensor:
        freq, lam = self.frequencies(), self.amplitudes()
        tau = lags.to(freq.dtype)
        angle = 2 * math.pi * freq[..., None] * tau + self.offsets[..., None]  # (H, D, K, L)
        return (lam[..., None] ** 2 * torch.cos(angle)).sum(-2) / (2 * self.num_sines)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_sines={self.num_sines}"
