"""sineSPE's shared path: C_q = Ω W_q and C_k = Ω W_k built once per forward, their backward in chunks.

The layers contract with the codes and hand their (x, g) to the codes' node (shared_codes.py); this
node's backward forms dC from them in chunks of positions through one reused buffer (a fresh
full-size dC per side costs more in page faults than its matmul on a CPU, and a chunk stays in cache)
and goes on to the gradients of the frequencies and of the two weights.

Layout: C is written as (N, H, D, R) by a batched matmul over (head, feature) straight into a strided
view, so that each (position, head) slice is a contiguous (D, R) matrix for the per-position
contraction, and the backward reads dC through the same view: no transposing copies.
"""

from __future__ import annotations

import math

import torch
from spelab.nn.positional.shared_codes import SharedCodes, first_order_only

# elements of the dC chunk in backward (2^21 fp32 = 8 MiB)
SHARED_BACKWARD_CHUNK = 2**21


def _sine_omega(freq: torch.Tensor, start: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    """[cos a, sin a], a = 2π f t for t = start ... start+n-1: (H, D, n, 2K), cos and sin computed on
    contiguous tensors (a strided `out=` is not vectorised on CPU). The phase at `start` is reduced
    modulo one cycle in float64, so a large offset keeps its precision."""
    calc = torch.promote_types(dtype, torch.float32)
    f = freq.detach()
    start_cycles = f.to(torch.float64) * start
    base = (2 * math.pi * (start_cycles - torch.floor(start_cycles))).to(calc)            # (H, D, K)
    steps = torch.arange(n, device=f.device, dtype=calc).view(1, 1, n, 1)
    angle = torch.addcmul(base.unsqueeze(2), steps, f.to(calc).unsqueeze(2), value=2 * math.pi)
    return torch.cat((torch.cos(angle), torch.sin(angle)), dim=-1).to(dtype)


def _by_feature(code: torch.Tensor, heads: int, dim: int) -> torch.Tensor:
    """(N·H, D, R) code (or its gradient) seen as (H·D, N, R), a strided view (no copy)."""
    n_heads, _, reals = code.shape
    return code.view(n_heads // heads, heads * dim, reals).transpose(0, 1)


class _BuildCodes(torch.autograd.Function):
    """(freq (H, D, K), W_q, W_k (H, D, 2K, R)) -> token; C_q = Ω W_q, C_k = Ω W_k go into `shared`."""

    @staticmethod
    def forward(ctx, shared, freq, weight_q, weight_k, start, n):  # noqa: D401 (autograd signature)
        heads, dim, two_k, reals = weight_q.shape
        dtype = weight_q.dtype
        with torch.autocast(freq.device.type, enabled=False):
            omega = _sine_omega(freq, start, n, dtype).view(heads * dim, n, two_k)
            codes = []
            for w in (weight_q, weight_k):
                c = torch.empty(n * heads, dim, reals, device=freq.device, dtype=dtype)
                torch.bmm(omega, w.reshape(heads * dim, two_k, reals), out=_by_feature(c, heads, dim))
                codes.append(c)
        shared.codes = tuple(codes)
        ctx.shared, ctx.start = shared, start
        ctx.save_for_backward(omega, weight_q, weight_k)
        return freq.new_zeros(())

    @staticmethod
    @first_order_only
    def backward(ctx, _):
        shared: SharedCodes = ctx.shared
        omega, weight_q, weight_k = ctx.saved_tensors
        heads, dim, two_k, reals = weight_q.shape
        hd, n, k = heads * dim, omega.shape[1], two_k // 2
        acc = torch.promote_types(omega.dtype, torch.float32)
        need_f = ctx.needs_input_grad[1]
        sides = []  # (side, X, G, W (H·D, 2K, R), dW accumulator or None)
        for side, w in enumerate((weight_q, weight_k)):
            taken = shared.take(side, omega.dtype)
            if taken is not None:
                d_w = torch.zeros(hd, two_k, reals, dtype=w.dtype, device=w.device) \
                    if ctx.needs_input_grad[2 + side] else None
                sides.append((side, *taken, w.reshape(hd, two_k, reals), d_w))
        shared.finish_backward()
        d_freq = torch.zeros(hd, k, dtype=acc, device=omega.device) if need_f else None
        # dC in chunks of positions through one reused buffer: a fresh full-size dC per side costs
        # more in page faults than its matmul on a CPU, and a chunk stays in cache for dW and dΩ
        step = max(1, min(n, SHARED_BACKWARD_CHUNK // (heads * dim * reals)))
        buffer = omega.new_empty(step * heads, dim, reals) if sides else None
        for s in range(0, n if sides else 0, step):
            e = min(n, s + step)
            d_code_flat = buffer[: (e - s) * heads]
            d_code = _by_feature(d_code_flat, heads, dim)                                 # (H·D, n_c, R)
            omega_c = omega[:, s:e]
            d_omega = None
            for _, x, g, w, d_w in sides:
                rows = slice(s * heads, e * heads)
                torch.bmm(x[rows].transpose(1, 2), g[rows], out=d_code_flat)
                if d_w is not None:
                    d_w.baddbmm_(omega_c.transpose(1, 2), d_code)
                if need_f:
                    w_t = w.transpose(1, 2)
                    d_omega = torch.bmm(d_code, w_t) if d_omega is None else d_omega.baddbmm_(d_code, w_t)
            if need_f:
                cos, sin = omega_c.split(k, dim=-1)
                d_cos, d_sin = d_omega.split(k, dim=-1)
                d_angle = (d_sin * cos - d_cos * sin).to(acc)                              # (H·D, n_c, K)
                t = torch.arange(ctx.start + s, ctx.start + e, device=omega.device, dtype=acc)
                d_freq += torch.einsum("bnk,n->bk", d_angle, t)
        grads = [None, None]
        for side, _, _, _, d_w in sides:
            if d_w is not None:
                grads[side] = d_w.view(weight_q.shape)
        if need_f:
            d_freq = ((2 * math.pi) * d_freq).view(heads, dim, k).to(omega.dtype)
        return None, d_freq, grads[0], grads[1], None, None


def build_shared_codes(freq: torch.Tensor, weight_q: torch.Tensor, weight_k: torch.Tensor, start: int,
                       n: int) -> tuple[SharedCodes, torch.Tensor | None]:
    """C_q = Ω W_q and C_k = Ω W_k at positions start ... start+n-1, Ω = [cos 2πft, sin 2πft]
    (freq (H, D, K), weights (H, D, 2K, R)), for `contract_shared` (shared_codes.py) by any number of layers.

    Returns (shared, token); the token (None when nothing needs a gradient) goes to every contraction.
    """
    heads, dim = weight_q.shape[:2]
    shared = SharedCodes(heads, dim)
    token = _BuildCodes.apply(shared, freq, weight_q, weight_k, start, n)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)
