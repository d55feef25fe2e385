"""sineSPE's shared path: the codes C_q, C_k built once per forward, used by every layer, one backward.

With codes shared by all layers (the paper's setting), layer l maps x_l (B, N, H, D) to
x̂_l[m] = x_l[m] C[m] per (position, head), C (N, H, D, R). The gradient that C receives is
dC[m] = Σ_l x_l[m]ᵀ g_l[m], a sum of rank-B terms, one per layer. Letting autograd form it would
build one (N, H, D, R) tensor per layer and side and add them up: on a CPU that is most of SPE's
cost in a training step (fresh 32 MiB tensors, matmuls with an inner dimension of B).

So the layers' backward does not return dC. Each contraction's backward hands its (x_l, g_l) to the
`SharedSineCodes` it read C from, and returns a zero gradient to a scalar `token`, the output of
`_BuildCodes`. The autograd engine runs a node only once every node that feeds it a gradient has run,
so `_BuildCodes.backward` runs once, after the last layer's, and forms dC for all layers with one
matmul (inner dimension L·B), then the gradients of the frequencies and of the two weights.

Entries are tagged with the autograd graph task that produced them, so a backward that stops short of
the codes (`autograd.grad` w.r.t. activations only) leaves nothing that a later backward would count.
The backward is not differentiable again (`create_graph=True` raises).

Layout: C is written as (N, H, D, R) by a batched matmul over (head, feature) straight into a strided
view, so that each (position, head) slice is a contiguous (D, R) matrix for the per-position
contraction, and the backward reads dC through the same view: no transposing copies.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

# elements of the dC chunk in backward (2^21 fp32 = 8 MiB)
SHARED_BACKWARD_CHUNK = 2**21

_task_id = getattr(torch._C, "_current_graph_task_id", lambda: None)


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


class SharedSineCodes:
    """What the layers of one forward share: the codes, and the (x, g) pairs their backward hands over.

    codes: (C_q, C_k), each (N·H, D, R) contiguous, detached; `spent`: set once the backward has run
    (the cache then rebuilds). The token is kept by the caller, not here: the token's graph node holds
    this object, and a reference back would make a cycle.
    """

    def __init__(self, heads: int, dim: int) -> None:
        self.heads, self.dim = heads, dim
        self.codes: tuple[torch.Tensor, torch.Tensor] | None = None
        self.token_dtype = torch.float32
        self.spent = False
        self._cast: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pending: list[tuple[object, int, torch.Tensor, torch.Tensor]] = []

    def code(self, side: int, dtype: torch.dtype) -> torch.Tensor:
        """C_q (side 0) or C_k (side 1) in `dtype`; a cast (autocast) is made once for all layers."""
        assert self.codes is not None
        if self.codes[side].dtype == dtype:
            return self.codes[side]
        if dtype not in self._cast:
            self._cast[dtype] = tuple(c.to(dtype) for c in self.codes)
        return self._cast[dtype][side]

    def hand_over(self, side: int, x: torch.Tensor, grad: torch.Tensor) -> None:
        self._pending.append((_task_id(), side, x, grad))

    def take(self, side: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(X, G) of every layer of this backward: (N·H, ΣB, D), (N·H, ΣB, R) in `dtype`; None if none."""
        task = _task_id()
        mine = [(x, g) for t, s, x, g in self._pending if t == task and s == side]
        if not mine:
            return None
        return (torch.cat([x for x, _ in mine], dim=1).to(dtype),
                torch.cat([g for _, g in mine], dim=1).to(dtype))

    def finish_backward(self) -> None:
        self._pending.clear()  # entries of other tasks are stale: their backward skipped the codes
        self.spent = True


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
    @once_differentiable
    def backward(ctx, _):
        shared: SharedSineCodes = ctx.shared
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


class _Contract(torch.autograd.Function):
    """x (B, N, H, D) -> (B, N, H, R) = Σ_d x_d C_d with C from `shared` (side 0: q, 1: k), one bmm over
    (position, head). Its backward returns dx, hands (x, g) to `shared` and a zero to the token."""

    @staticmethod
    def forward(ctx, x, token, shared, side):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        code = shared.code(side, x.dtype)
        reals = code.shape[-1]
        xt = x.permute(1, 2, 0, 3).reshape(n * heads, batch, dim).contiguous()
        ctx.save_for_backward(xt, code)
        ctx.shared, ctx.side, ctx.shape = shared, side, (batch, n, heads, dim, reals)
        return torch.bmm(xt, code).view(n, heads, batch, reals).permute(2, 0, 1, 3)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        xt, code = ctx.saved_tensors
        batch, n, heads, dim, reals = ctx.shape
        gt = grad.permute(1, 2, 0, 3).reshape(n * heads, batch, reals).contiguous()
        dx = d_token = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(gt, code.transpose(1, 2)).view(n, heads, batch, dim).permute(2, 0, 1, 3)
        if ctx.needs_input_grad[1]:
            ctx.shared.hand_over(ctx.side, xt, gt)
            d_token = torch.zeros((), dtype=ctx.shared.token_dtype, device=grad.device)
        return dx, d_token, None, None


def build_shared_codes(freq: torch.Tensor, weight_q: torch.Tensor, weight_k: torch.Tensor, start: int,
                       n: int) -> tuple[SharedSineCodes, torch.Tensor | None]:
    """C_q = Ω W_q and C_k = Ω W_k at positions start ... start+n-1, Ω = [cos 2πft, sin 2πft]
    (freq (H, D, K), weights (H, D, 2K, R)), for `contract_shared` by any number of layers.

    Returns (shared, token); the token (None when nothing needs a gradient) goes to every contraction.
    """
    heads, dim = weight_q.shape[:2]
    shared = SharedSineCodes(heads, dim)
    token = _BuildCodes.apply(shared, freq, weight_q, weight_k, start, n)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)


def contract_shared(x: torch.Tensor, shared: SharedSineCodes, token: torch.Tensor | None,
                    side: int) -> torch.Tensor:
    """x (B, N, H, D) -> (B, N, H, R) with the shared code of `side` (0: C_q, 1: C_k), in x's (or
    autocast's) dtype."""
    device_type = x.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
    with torch.autocast(device_type, enabled=False):
        return _Contract.apply(x.to(dtype), token, shared, side)
