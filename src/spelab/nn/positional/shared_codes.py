"""Codes shared by the layers of one forward: one contraction per layer, one backward for all.

With codes shared by all layers (the paper's setting), layer l maps x_l (B, N, H, D) to
x̂_l[m] = x_l[m] C[m] per (position, head), C (N, H, D, R). The gradient that C receives is
dC[m] = Σ_l x_l[m]ᵀ g_l[m], a sum of rank-B terms, one per layer. Letting autograd form it would
build one (N, H, D, R) tensor per layer and side and add them up: on a CPU that is most of SPE's
cost in a training step (fresh 32 MiB tensors, matmuls with an inner dimension of B).

So the layers' backward does not return dC. Each contraction's backward hands its (x_l, g_l) to the
`SharedCodes` it read C from, and returns a zero gradient to a scalar `token`, the output of the node
that made the codes. The autograd engine runs a node only once every node that feeds it a gradient
has run, so that node's backward runs once, after the last layer's, and forms dC for all layers with
one matmul (inner dimension L·B). Two such nodes: `share_codes` adopts codes built by ordinary autograd
ops (convSPE's FFTs) and returns the full dC to them; sine_shared.py builds sineSPE's codes itself.

Entries are tagged with the autograd graph task that produced them, so a backward that stops short of
the codes (`autograd.grad` w.r.t. activations only) leaves nothing that a later backward would count.
These backward functions are first order: under `create_graph=True` they raise (`first_order_only`)
rather than give a second derivative that silently misses their part.
"""

from __future__ import annotations

import functools

import torch

from spelab.nn.kernels import cpu_kernels

_task_id = getattr(torch._C, "_current_graph_task_id", lambda: None)


def first_order_only(backward):
    """Decorate an autograd Function's hand-written backward: raise under create_graph=True (a
    double backward would treat its saved tensors as constants and silently miss terms)."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "spelab SPE: the backward of SineSPE/ConvSPE is first order only; a double "
                "backward (autograd.grad(..., create_graph=True) through SPE) is not supported"
            )
        return backward(ctx, *grads)

    return wrapper


class SharedCodes:
    """What the layers of one forward share: the codes, and the (x, g) pairs their backward hands over.

    codes: (C_q, C_k), each (N·H, D, R) contiguous, detached; `spent`: set once the backward has run
    (the cache then rebuilds). The token is kept by the caller, not here: the token's graph node holds
    this object, and a reference back would make a cycle.
    """

    def __init__(self) -> None:
        self.codes: tuple[torch.Tensor, torch.Tensor] | None = None
        self.token_dtype = torch.float32
        self.kernels = None  # the compiled CPU kernels (nn/kernels/cpu.py) when they run these codes
        self.spent = False
        self._cast: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pending: list[tuple[object, int, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def code(self, side: int, dtype: torch.dtype) -> torch.Tensor:
        """C_q (side 0) or C_k (side 1) in `dtype`; a cast (autocast) is made once for all layers."""
        assert self.codes is not None
        if self.codes[side].dtype == dtype:
            return self.codes[side]
        if dtype not in self._cast:
            self._cast[dtype] = tuple(c.to(dtype) for c in self.codes)
        return self._cast[dtype][side]

    def hand_over(self, side: int, x: torch.Tensor, grad: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """A layer's (x, g), (N·H, B, ·) (views with any strides but the last), and its gate keep (H, D)
        when the code it applied was keep·C + mix: its share of dC is then (keep·x)ᵀ g."""
        self._pending.append((_task_id(), side, x, grad, keep))

    def take_layers(self, side: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Each layer's (x, g, keep) of this backward: (N·H, B, D), (N·H, B, R), (H, D) or None."""
        task = _task_id()
        return [(x, g, keep) for t, s, x, g, keep in self._pending if t == task and s == side]

    def take(self, side: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(X, G) of every layer of this backward: (N·H, ΣB, D) with each layer's gate applied, (N·H, ΣB, R)
        in `dtype`; None if none."""
        mine = [(_gated(x, keep), g) for x, g, keep in self.take_layers(side)]
        if not mine:
            return None
        if len(mine) == 1:  # one layer: no concatenation (a full copy)
            return mine[0][0].to(dtype), mine[0][1].to(dtype)
        return (torch.cat([x for x, _ in mine], dim=1).to(dtype), torch.cat([g for _, g in mine], dim=1).to(dtype))

    def finish_backward(self) -> None:
        self._pending.clear()  # entries of other tasks are stale: their backward skipped the codes
        self.spent = True


def _gated(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """keep·x for x (N·H, B, D) and keep (H, D); x without a gate."""
    if keep is None:
        return x
    heads = keep.shape[0]
    return (x.unflatten(0, (-1, heads)) * keep[:, None, :].to(x.dtype)).flatten(0, 1)


class _Share(torch.autograd.Function):
    """(C_q, C_k) (N, H, D, R) built by autograd ops -> token; their backward gets the full dC."""

    @staticmethod
    def forward(ctx, shared, code_q, code_k):  # noqa: D401 (autograd signature)
        n, heads, dim, num_realizations = code_q.shape
        shared.codes = tuple(
            c.detach().reshape(n * heads, dim, num_realizations).contiguous() for c in (code_q, code_k)
        )
        shared.kernels = cpu_kernels(code_q, num_realizations)  # compiled contractions on a CPU
        ctx.shared, ctx.shape = shared, code_q.shape
        return code_q.new_zeros(())

    @staticmethod
    @first_order_only
    def backward(ctx, _):
        shared: SharedCodes = ctx.shared
        grads = []
        for side in (0, 1):
            taken = shared.take(side, shared.codes[side].dtype)
            if taken is None or not ctx.needs_input_grad[1 + side]:
                grads.append(None)
                continue
            x, g = taken
            grads.append(torch.bmm(x.transpose(1, 2), g).view(ctx.shape))
        shared.finish_backward()
        return None, grads[0], grads[1]


def share_codes(code_q: torch.Tensor, code_k: torch.Tensor) -> tuple[SharedCodes, torch.Tensor | None]:
    """Adopt codes (N, H, D, R) for `contract_shared` by any number of layers: (shared, token)."""
    shared = SharedCodes()
    token = _Share.apply(shared, code_q, code_k)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)


def _kernels(shared: SharedCodes, code: torch.Tensor):
    """The compiled kernels for a contraction with `code`: those of the codes, when it is float32 (an
    autocast copy in another dtype takes the PyTorch path)."""
    return shared.kernels if code.dtype == torch.float32 and code.is_contiguous() else None


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t, or a copy where its rows are not contiguous (what the kernels read: any strides but the last)."""
    return t if t.stride(-1) == 1 else t.contiguous()


class _Contract(torch.autograd.Function):
    """x (B, N, H, D) -> (B, N, H, R) = Σ_d x_d C_d with C from `shared` (side 0: q, 1: k), per (position,
    head): the compiled CPU kernels when the codes have them, else one bmm. Its backward returns dx, hands
    (x, g) to `shared` as (N·H, B, ·) and a zero to the token.

    The kernels read x and write the output in the layers' own (B, N, H, ·) layout, through (N·H, B, ·)
    views: no permuted copy in or out, and a contiguous q̂ for the attention's elementwise ops (on a
    permuted one they ran at a fraction of their speed)."""

    @staticmethod
    def forward(ctx, x, token, shared, side):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        code = shared.code(side, x.dtype)
        num_realizations = code.shape[-1]
        kernels = _kernels(shared, code)
        if kernels is not None:
            xt = _rows(x.reshape(batch, n * heads, dim).transpose(0, 1))  # a view when x is contiguous
            out = x.new_empty(batch, n, heads, num_realizations)
            kernels.contract(xt, code, out.view(batch, n * heads, num_realizations).transpose(0, 1))
        else:
            xt = x.permute(1, 2, 0, 3).reshape(n * heads, batch, dim).contiguous()
            out = torch.bmm(xt, code).view(n, heads, batch, num_realizations).permute(2, 0, 1, 3)
        ctx.save_for_backward(xt, code)
        ctx.shared, ctx.side, ctx.shape = shared, side, (batch, n, heads, dim, num_realizations)
        return out

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        xt, code = ctx.saved_tensors
        batch, n, heads, dim, num_realizations = ctx.shape
        kernels = _kernels(ctx.shared, code)
        if kernels is not None:
            gt = _rows(grad.reshape(batch, n * heads, num_realizations).transpose(0, 1))
        else:
            gt = grad.permute(1, 2, 0, 3).reshape(n * heads, batch, num_realizations).contiguous()
        dx = d_token = None
        if ctx.needs_input_grad[0]:
            if kernels is not None:
                dx = grad.new_empty(batch, n, heads, dim)
                kernels.contract_t(gt, code, dx.view(batch, n * heads, dim).transpose(0, 1))
            else:
                dx = torch.bmm(gt, code.transpose(1, 2)).view(n, heads, batch, dim).permute(2, 0, 1, 3)
        if ctx.needs_input_grad[1]:
            ctx.shared.hand_over(ctx.side, xt, gt)
            d_token = torch.zeros((), dtype=ctx.shared.token_dtype, device=grad.device)
        return dx, d_token, None, None


def _per_head(t: torch.Tensor) -> torch.Tensor:
    """(B, N, H, X) -> a (H, B·N, X) view: one row-strided matrix per head, which BLAS reads in place."""
    batch, n, heads, width = t.shape
    return t.view(batch * n, heads, width).transpose(0, 1)


class _ContractGated(torch.autograd.Function):
    """x (B, N, H, D) -> (B, N, H, R) through one layer's gated code keep·C + mix (keep (H, D), mix (H, D, R)),
    in the compiled CPU kernels: (keep·x) C per tile (keep applied on the fly), then x·mix as one matmul
    per head added in place. Its backward: dx = keep·(g Cᵀ) + g mixᵀ and dkeep = Σ x·(g Cᵀ) from the
    kernel and a matmul, dmix = Σ xᵀ g per head (one matmul); it hands (x, g, keep) to `shared`. No
    operand is copied: the kernels and BLAS read the layers' (B, N, H, ·) tensors through strided views."""

    @staticmethod
    def forward(ctx, x, token, keep, mix, shared, side):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        x, keep, mix = x.contiguous(), keep.contiguous(), mix.contiguous()
        code = shared.code(side, x.dtype)
        num_realizations = code.shape[-1]
        xt = x.view(batch, n * heads, dim).transpose(0, 1)
        out = x.new_empty(batch, n, heads, num_realizations)
        shared.kernels.contract_gated(xt, code, keep, out.view(batch, n * heads, num_realizations).transpose(0, 1))
        _per_head(out).baddbmm_(_per_head(x), mix)
        ctx.save_for_backward(x, code, keep, mix)
        ctx.shared, ctx.side = shared, side
        return out

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        x, code, keep, mix = ctx.saved_tensors
        batch, n, heads, dim = x.shape
        grad = grad.contiguous()
        xt, gt = (t.view(batch, n * heads, t.shape[-1]).transpose(0, 1) for t in (x, grad))
        dx = d_token = d_keep = d_mix = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            dx, d_keep = grad.new_empty(x.shape), keep.new_empty(heads, dim)
            ctx.shared.kernels.contract_t_gated(
                gt, code, xt, keep, dx.view(batch, n * heads, dim).transpose(0, 1), d_keep
            )
            _per_head(dx).baddbmm_(_per_head(grad), mix.transpose(1, 2))
        if ctx.needs_input_grad[3]:
            d_mix = torch.bmm(_per_head(x).transpose(1, 2), _per_head(grad))
        if ctx.needs_input_grad[1]:
            ctx.shared.hand_over(ctx.side, xt, gt, keep)
            d_token = torch.zeros((), dtype=ctx.shared.token_dtype, device=grad.device)
        return (
            dx if ctx.needs_input_grad[0] else None,
            d_token,
            d_keep if ctx.needs_input_grad[2] else None,
            d_mix,
            None,
            None,
        )


def contract_shared(
    x: torch.Tensor,
    shared: SharedCodes,
    token: torch.Tensor | None,
    side: int,
    keep: torch.Tensor | None = None,
    mix: torch.Tensor | None = None,
) -> torch.Tensor:
    """x (B, N, H, D) -> (B, N, H, R) with the shared code of `side` (0: C_q, 1: C_k), in x's (or
    autocast's) dtype. With a layer's gate, keep (H, D) and mix (H, D, R), the code is keep·C + mix: the
    compiled kernels apply it as it is; the PyTorch path as (keep·x) C + x·mix (a small (H, D, R)
    contraction), never building a gated (N, H, D, R) code."""
    device_type = x.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
    with torch.autocast(device_type, enabled=False):
        x = x.to(dtype)
        if keep is None:
            return _Contract.apply(x, token, shared, side)
        keep, mix = keep.to(dtype), mix.to(dtype)
        if _kernels(shared, shared.code(side, dtype)) is not None:
            return _ContractGated.apply(x, token, keep, mix, shared, side)
        return _Contract.apply(x * keep, token, shared, side) + torch.einsum("bnhd,hdr->bnhr", x, mix)
