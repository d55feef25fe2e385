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
"""

from __future__ import annotations

import math
import weakref

import torch

from spelab.nn.kernels import cpu_kernels
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

    def get(
        self, owner: SharedCodes, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
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
        shared.kernels = cpu_kernels(freq, num_realizations) if dtype == torch.float32 else None
        with torch.autocast(freq.device.type, enabled=False):
            omega = sine_features(freq, None, start, n, dtype, position_axis=2).view(heads * dim, n, two_k)
            if shared.kernels is not None:  # both codes in one compiled pass over Ω
                weights = torch.stack((weight_q, weight_k)).reshape(2, heads * dim, two_k, num_realizations)
                shared.kernels.build(omega, weights.contiguous(), heads, codes)
            else:
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
        if shared.kernels is not None:  # each layer's (x, g) read in place by the compiled kernel
            sides = []
            for side, w in enumerate((weight_q, weight_k)):
                layers = shared.take_layers(side)
                if layers:
                    xs = [x.to(omega.dtype).contiguous() for x, _ in layers]  # (a bf16 layer under autocast)
                    gs = [g.to(omega.dtype).contiguous() for _, g in layers]
                    sides.append((side, xs, gs, w.reshape(hd, two_k, num_realizations), ctx.needs_input_grad[2 + side]))
            shared.finish_backward()
            return _compiled_backward(ctx, shared.kernels, omega, weight_q.shape, sides, need_f)
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


def _compiled_backward(ctx, kernels, omega, shape, sides, need_f):
    """The backward through the compiled kernels: [Ω, tΩ]ᵀ dC per side, dC formed in cache."""
    heads = shape[0]
    sums = {side: kernels.code_grad(omega, x, g, heads, ctx.start, need_f) for side, x, g, _, _ in sides}
    return (None, *_gradients(sums, shape, sides, need_f, omega), None, None, None)


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
