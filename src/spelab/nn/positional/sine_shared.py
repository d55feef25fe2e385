"""sineSPE's shared path: C_q = Ω W_q and C_k = Ω W_k built once per forward, their backward in chunks.

The layers contract with the codes and hand their (x, g) to the codes' node (shared_codes.py); this
node's backward forms dC from them in chunks of positions through one reused buffer (a fresh
full-size dC per side costs more in page faults than its matmul on a CPU, and a chunk stays in cache).
One matmul per chunk, [Ω, tΩ]ᵀ dC, then gives the weights' gradient and, through
T = Σ_t t Ω[t]ᵀ dC[t], the frequencies' (dfreq_k = 2π Σ_r W_sin[k,r] T_cos[k,r] - W_cos[k,r] T_sin[k,r]).
On a CPU the codes' memory is reused from one forward to the next (`CodeBuffers`).

Layout: C is written as (N, H, D, R) by a batched matmul over (head, feature) straight into a strided
view, so that each (position, head) slice is a contiguous (D, R) matrix for the per-position
contraction, and the backward reads dC through the same view: no transposing copies.

On a CPU with float32 codes (SPELAB_KERNELS=auto|cpp) a second node, `_BuildCodesCompiled`, does the
same through the compiled kernels (nn/kernels/sine_cpu.cpp): it takes the generator's parameters
(frequencies, amplitudes, phases and the noise) instead of W_q, W_k, so that its backward can give
their gradients from sums along positions (`code_sums`) without forming the (2K, R) weight gradient.
"""

from __future__ import annotations

import math
import weakref

import torch

from spelab.nn.positional.shared_codes import SharedCodes, first_order_only
from spelab.nn.positional.sine_features import sine_features

# elements of the dC chunk in backward (2^21 fp32 = 8 MiB)
SHARED_BACKWARD_CHUNK = 2**21


def _by_feature(code: torch.Tensor, heads: int, dim: int) -> torch.Tensor:
    """(N·H, D, R) code (or its gradient) seen as (H·D, N, R), a strided view (no copy)."""
    n_heads, _, num_realizations = code.shape
    return code.view(n_heads // heads, heads * dim, num_realizations).transpose(0, 1)


class CodeBuffers:
    """CPU memory for the two codes, kept from one forward to the next (each SineSPE owns one).

    glibc hands blocks over 32 MiB back to the kernel when they are freed, so a fresh (N, H, D, R) code
    is page-faulted anew at every forward: on a CPU that costs more than the matmul that fills it. The
    buffers are handed out again only once the `SharedCodes` that last used them has been collected:
    every graph node that reads the codes, and the code's cache, hold that object, so once it is gone
    nothing can read the buffers any more. Until then a forward gets fresh memory. CUDA tensors always
    get fresh memory (its caching allocator already reuses it). Copies and pickles start empty.
    """

    def __init__(self) -> None:
        self._owner: weakref.ref | None = None
        self._buffers: torch.Tensor | None = None

    def __reduce__(self):
        return (CodeBuffers, ())

    def get(self, owner: SharedCodes, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(2, *shape): both codes in one tensor (the compiled build writes them in one pass)."""
        if device.type != "cpu" or (self._owner is not None and self._owner() is not None):  # or still in use
            return _empty_pair(shape, dtype, device)
        held = self._buffers
        if held is None or held.shape[1:] != shape or held.dtype != dtype or held.device != device:
            self._buffers = None  # free the old ones before allocating
            held = self._buffers = _empty_pair(shape, dtype, device)
        self._owner = weakref.ref(owner)
        return held


def _empty_pair(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty((2, *shape), dtype=dtype, device=device)


class _BuildCodes(torch.autograd.Function):
    """(freq (H, D, K), W_q, W_k (H, D, 2K, R)) -> token; C_q = Ω W_q, C_k = Ω W_k go into `shared`."""

    @staticmethod
    def forward(ctx, shared, freq, weight_q, weight_k, start, n, buffers):  # noqa: D401 (autograd signature)
        heads, dim, two_k, num_realizations = weight_q.shape
        dtype = weight_q.dtype
        shape = (n * heads, dim, num_realizations)
        codes = (
            buffers.get(shared, shape, dtype, freq.device)
            if buffers is not None
            else _empty_pair(shape, dtype, freq.device)
        )
        with torch.autocast(freq.device.type, enabled=False):
            omega = sine_features(freq, None, start, n, dtype, position_axis=2).view(heads * dim, n, two_k)
            for w, c in zip((weight_q, weight_k), codes):
                torch.bmm(omega, w.reshape(heads * dim, two_k, num_realizations), out=_by_feature(c, heads, dim))
        shared.codes = (codes[0], codes[1])
        ctx.shared, ctx.start = shared, start
        ctx.save_for_backward(omega, weight_q, weight_k)
        return freq.new_zeros(())

    @staticmethod
    @first_order_only
    def backward(ctx, _):
        shared: SharedCodes = ctx.shared
        omega, weight_q, weight_k = ctx.saved_tensors
        heads, dim, two_k, num_realizations = weight_q.shape
        hd, n = heads * dim, omega.shape[1]
        need_f = ctx.needs_input_grad[1]
        sides = []  # (side, X, G, W (H·D, 2K, R), whether W needs a gradient)
        for side, w in enumerate((weight_q, weight_k)):
            taken = shared.take(side, omega.dtype)
            if taken is not None:
                sides.append((side, *taken, w.reshape(hd, two_k, num_realizations), ctx.needs_input_grad[2 + side]))
        shared.finish_backward()
        # dC in chunks of positions through one reused buffer: a fresh full-size dC per side costs
        # more in page faults than its matmul on a CPU, and a chunk stays in cache. Per chunk and side,
        # one matmul [Ω_c, t Ω_c]ᵀ dC_c (t: the positions) accumulates both dW = Σ_t Ω[t]ᵀ dC[t] and
        # T = Σ_t t Ω[t]ᵀ dC[t], from which dfreq_k = 2π Σ_r (W_sin[k,r] T_cos[k,r] - W_cos[k,r] T_sin[k,r]):
        # no dΩ and no per-angle pass.
        step = max(1, min(n, SHARED_BACKWARD_CHUNK // (heads * dim * num_realizations)))
        buffer = omega.new_empty(step * heads, dim, num_realizations) if sides else None
        width = 2 * two_k if need_f else two_k
        sums = {
            side: torch.zeros(hd, width, num_realizations, dtype=omega.dtype, device=omega.device) for side, *_ in sides
        }
        for s in range(0, n if sides else 0, step):
            e = min(n, s + step)
            d_code_flat = buffer[: (e - s) * heads]
            d_code = _by_feature(d_code_flat, heads, dim)  # (H·D, n_c, R)
            omega_c = omega[:, s:e]
            if need_f:
                t = torch.arange(ctx.start + s, ctx.start + e, device=omega.device, dtype=omega.dtype)
                omega_c = torch.cat((omega_c, omega_c * t[:, None]), dim=-1)  # (H·D, n_c, 4K)
            for side, x, g, _, _ in sides:
                rows = slice(s * heads, e * heads)
                torch.bmm(x[rows].transpose(1, 2), g[rows], out=d_code_flat)
                sums[side].baddbmm_(omega_c.transpose(1, 2), d_code)
        return (None, *_gradients(sums, weight_q.shape, sides, need_f, omega), None, None, None)


def _gradients(sums, shape, sides, need_f, omega):
    """(dfreq, dW_q, dW_k) from each side's Σ_t [Ω, tΩ][t]ᵀ dC[t] (H·D, 2K or 4K, R)."""
    heads, dim, two_k, _ = shape
    k, dtype = two_k // 2, omega.dtype
    acc = torch.promote_types(dtype, torch.float32)
    grads = [None, None]
    d_freq = torch.zeros(heads * dim, k, dtype=acc, device=omega.device) if need_f else None
    for side, _, _, w, d_w in sides:
        if d_w:
            grads[side] = sums[side][:, :two_k].reshape(shape)
        if need_f:
            w_cos, w_sin = w.to(acc).split(k, dim=1)
            t_cos, t_sin = sums[side][:, two_k:].to(acc).split(k, dim=1)
            d_freq += (w_sin * t_cos - w_cos * t_sin).sum(-1)
    if d_freq is not None:
        d_freq = ((2 * math.pi) * d_freq).view(heads, dim, k).to(dtype)
    return d_freq, grads[0], grads[1]


class _BuildCodesCompiled(torch.autograd.Function):
    """The compiled CPU path (nn/kernels/sine_cpu.cpp): (freq, λ, θ (H, D, K); noise Z) -> token.

    W = s·[λ, λ]·Z (s: the code scale), C_k = Ω W and C_q = Ω R(θ) W = Ω_q W, with Ω_q the features
    shifted by the phase θ. The backward needs no (2K, R) weight gradient: with P[n, j] = dC[n]·Z[j],
    S[a, b, k] = Σ_n Ω[n, a_k] P[n, b_k] and S' the same weighted by the position t (a, b: cos, sin),
    both from one compiled pass per side (`code_sums`), and S_q = R(θ) S for the shifted features:
      dλ_k = s Σ_sides (S[c, c] + S[s, s]),  dθ_k = s λ_k (S_q[c, s] - S_q[s, c]),
      df_k = 2π s λ_k Σ_sides (S'[c, s] - S'[s, c]).
    Half the products of the PyTorch path's [Ω, tΩ]ᵀ dC, whose dW then goes through autograd.
    """

    @staticmethod
    def forward(ctx, shared, kernels, freq, lam, phase, noise, scale, start, n, buffers):  # noqa: D401
        heads, dim, two_k, num_realizations = noise.shape
        shape = (n * heads, dim, num_realizations)
        codes = (
            buffers.get(shared, shape, noise.dtype, freq.device)
            if buffers is not None
            else _empty_pair(shape, noise.dtype, freq.device)
        )
        with torch.no_grad():
            weight = noise * (scale * torch.cat((lam, lam), dim=-1))[..., None]
            weights = torch.stack((rotate_phase(weight, phase), weight)).reshape(2, heads * dim, two_k, -1)
            omega_t = sine_features(freq, None, start, n, noise.dtype, position_axis=3).view(heads * dim, two_k, n)
            kernels.build(omega_t, weights.contiguous(), heads, codes)
        shared.codes, shared.kernels = (codes[0], codes[1]), kernels
        ctx.shared, ctx.kernels, ctx.scale, ctx.start = shared, kernels, scale, start
        ctx.save_for_backward(omega_t, lam, phase, noise)
        return freq.new_zeros(())

    @staticmethod
    @first_order_only
    def backward(ctx, _):
        shared: SharedCodes = ctx.shared
        omega_t, lam, phase, noise = ctx.saved_tensors
        heads, dim, two_k, num_realizations = noise.shape
        k = two_k // 2
        z = noise.reshape(heads * dim, two_k, num_realizations).contiguous()
        sums = []  # per side: (2 [plain, t-weighted], 2 [a], 2 [b], H, D, K), or None
        for side in (0, 1):
            layers = shared.take_layers(side)
            if not layers:
                sums.append(None)
                continue
            xs = [x.to(omega_t.dtype) for x, _, _ in layers]  # (a bf16 layer under autocast; row-strided views)
            gs = [g.to(omega_t.dtype) for _, g, _ in layers]
            # each layer's gate (H, D): ones for a layer that handed over keep·x itself (the PyTorch path)
            ones = omega_t.new_ones(heads, dim)
            keeps = [ones if keep is None else keep.to(omega_t.dtype).contiguous() for *_, keep in layers]
            out = ctx.kernels.code_sums(omega_t, xs, gs, keeps, z, heads, ctx.start)  # (H·D, 2, 2, 2, K)
            sums.append(out.view(heads, dim, 2, 2, 2, k).permute(2, 3, 4, 0, 1, 5))
        shared.finish_backward()
        acc = torch.promote_types(lam.dtype, torch.float32)
        lam_acc = lam.to(acc)
        d_lam, d_phase, d_freq = (torch.zeros(lam.shape, dtype=acc, device=lam.device) for _ in range(3))
        for side, s in enumerate(sums):
            if s is None:
                continue
            if side == 0:  # the query side's features are shifted by θ: S_q[a', b] = Σ_a R(θ)[a', a] S[a, b]
                c, si = torch.cos(phase.to(acc)), torch.sin(phase.to(acc))
                s = torch.stack((c * s[:, 0] - si * s[:, 1], si * s[:, 0] + c * s[:, 1]), dim=1)
                d_phase += ctx.scale * lam_acc * (s[0, 0, 1] - s[0, 1, 0])
            d_lam += ctx.scale * (s[0, 0, 0] + s[0, 1, 1])
            d_freq += (2 * math.pi * ctx.scale) * lam_acc * (s[1, 0, 1] - s[1, 1, 0])
        dtype = lam.dtype
        return None, None, d_freq.to(dtype), d_lam.to(dtype), d_phase.to(dtype), None, None, None, None, None


def rotate_phase(weight: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """R(θ) W: [cos(a+θ), sin(a+θ)] W = [cos a, sin a] R(θ) W for weight rows laid out [cos_1..K, sin_1..K]."""
    w_cos, w_sin = weight.chunk(2, dim=-2)
    c, s = torch.cos(phase)[..., None], torch.sin(phase)[..., None]
    return torch.cat((c * w_cos + s * w_sin, c * w_sin - s * w_cos), dim=-2)


def build_shared_codes_compiled(
    kernels,
    freq: torch.Tensor,
    lam: torch.Tensor,
    phase: torch.Tensor,
    noise: torch.Tensor,
    scale: float,
    start: int,
    n: int,
    buffers: CodeBuffers | None = None,
) -> tuple[SharedCodes, torch.Tensor | None]:
    """`build_shared_codes` through the compiled CPU kernels, from the generator's parameters: freq, λ
    (amplitudes) and θ (phases) (H, D, K), noise Z (H, D, 2K, R), code scale s (W = s·[λ, λ]·Z)."""
    shared = SharedCodes()
    token = _BuildCodesCompiled.apply(shared, kernels, freq, lam, phase, noise, scale, start, n, buffers)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)


def build_shared_codes(
    freq: torch.Tensor,
    weight_q: torch.Tensor,
    weight_k: torch.Tensor,
    start: int,
    n: int,
    buffers: CodeBuffers | None = None,
) -> tuple[SharedCodes, torch.Tensor | None]:
    """C_q = Ω W_q and C_k = Ω W_k at positions start ... start+n-1, Ω = [cos 2πft, sin 2πft]
    (freq (H, D, K), weights (H, D, 2K, R)), for `contract_shared` (shared_codes.py) by any number of layers.

    Returns (shared, token); the token (None when nothing needs a gradient) goes to every contraction.
    `buffers` (a CodeBuffers) lends CPU memory kept from the previous forward.
    """
    shared = SharedCodes()
    token = _BuildCodes.apply(shared, freq, weight_q, weight_k, start, n, buffers)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)
