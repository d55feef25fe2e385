"""Linear attention kernels on feature-mapped queries/keys: bidirectional, causal chunked, recurrent.

All functions take phi_q, phi_k (B,N,H,M) (non-negative features) and v (B,N,H,E) and return
(B,N,H,E): out_t = sum_s a_ts v_s / (sum_s a_ts + eps), a_ts = phi_q[t] . phi_k[s], over s <= t when
causal. A row with no weight at all (every key padded) gives 0, never NaN.

Causal forms:
- `causal_linear_chunked`: the production path. Split N into chunks of C: inside a chunk a masked
  C x C product; across chunks the states S = sum phi_k v^T only at chunk boundaries, so memory is
  O(N (C + M E / C)) instead of the O(N M E) of a prefix sum.
- `causal_linear_naive`: the prefix-sum (cumsum of outer products) reference, O(N M E) memory.
- `linear_attention_masked`: the explicit N x N attention matrix, the plainest reference.
- `linear_step`: one recurrent step on the (S, z) state: O(1) per token.
If `fla` (fla-core, Triton) is importable and the tensors are on CUDA, `causal_linear_attention`
runs fla's chunked kernel for the numerator; the PyTorch path stays the reference and the CPU path.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from ._checks import check_positive_int

DEFAULT_EPS = 1e-6
DEFAULT_CHUNK = 64

try:  # optional Triton kernels; never required
    from fla.ops.linear_attn import chunk_linear_attn as _fla_chunk_linear_attn
except Exception:  # noqa: BLE001 - any import problem (no triton, no GPU build) means "not available"
    _fla_chunk_linear_attn = None

BACKENDS = ("auto", "torch", "fla")


def fla_available() -> bool:
    return _fla_chunk_linear_attn is not None


class LinearState(NamedTuple):
    """Recurrent state of (causal) linear attention: S = sum phi(k) v^T (B,H,M,E), z = sum phi(k) (B,H,M)."""

    S: torch.Tensor
    z: torch.Tensor


# ----------------------------------------------------------------------------- bidirectional


def linear_attention(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = DEFAULT_EPS, heads_first: bool = False
) -> torch.Tensor:
    """Non-causal: phi_q (phi_k^T v) / (phi_q . sum phi_k + eps); O(N M E) flops, O(N (M+E)) memory.

    Tensors are (B,N,H,·), or (B,H,N,·) with heads_first=True: then every product is a batched matmul
    on the tensors as they are (no layout copy of the M-wide features), the fast layout.
    """
    if heads_first:
        kv = torch.matmul(phi_k.transpose(-1, -2), v)  # (B,H,M,E)
        z = phi_k.sum(dim=2).unsqueeze(-1)  # (B,H,M,1)
        return torch.matmul(phi_q, kv) / (torch.matmul(phi_q, z) + eps)
    kv = torch.einsum("bnhm,bnhe->bhme", phi_k, v)
    z = phi_k.sum(dim=1)  # (B,H,M)
    num = torch.einsum("bnhm,bhme->bnhe", phi_q, kv)
    den = torch.einsum("bnhm,bhm->bnh", phi_q, z)
    return num / (den.unsqueeze(-1) + eps)


# ----------------------------------------------------------------------------- references


def linear_attention_masked(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, causal: bool, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """Reference: the explicit (B,H,N,N) attention matrix, lower-triangular when causal."""
    a = torch.einsum("bthm,bshm->bhts", phi_q, phi_k)
    if causal:
        n = a.shape[-1]
        a = a * torch.ones(n, n, dtype=torch.bool, device=a.device).tril()
    num = torch.einsum("bhts,bshe->bthe", a, v)
    den = a.sum(-1).transpose(1, 2)  # (B,N,H)
    return num / (den.unsqueeze(-1) + eps)


def causal_linear_naive(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """Reference: prefix sums of the outer products phi_k v^T; materialises (B,N,H,M,E)."""
    s = torch.einsum("bnhm,bnhe->bnhme", phi_k, v).cumsum(dim=1)
    z = phi_k.cumsum(dim=1)
    num = torch.einsum("bnhm,bnhme->bnhe", phi_q, s)
    den = (phi_q * z).sum(-1)
    return num / (den.unsqueeze(-1) + eps)


# ----------------------------------------------------------------------------- chunked


def _to_chunks(t: torch.Tensor, c: int) -> torch.Tensor:
    """(B,N,H,X) -> (B,H,L,C,X), zero-padded at the end to L*C positions (zeros add nothing)."""
    b, n, h, x = t.shape
    t = t.permute(0, 2, 1, 3)
    pad = (-n) % c
    if pad:
        t = torch.nn.functional.pad(t, (0, 0, 0, pad))
    return t.reshape(b, h, (n + pad) // c, c, x)


def _from_chunks(t: torch.Tensor, n: int) -> torch.Tensor:
    """(B,H,L,C,X) -> (B,N,H,X), dropping the padded tail."""
    b, h, nl, c, x = t.shape
    return t.reshape(b, h, nl * c, x)[:, :, :n].permute(0, 2, 1, 3)


def _exclusive_cumsum_(
    t: torch.Tensor, dim: int, reverse: bool = False, use_cumsum: bool | None = None
) -> torch.Tensor:
    """In place: t_i <- sum_{j<i} t_j (or sum_{j>i} when reverse) along `dim` (chunk states, no autograd).

    CUDA: one cumsum kernel. CPU: a running sum over the (few) chunks, since CPU cumsum over a
    non-innermost dim is several times slower than the additions it replaces.
    """
    length = t.shape[dim]
    if t.is_cuda if use_cumsum is None else use_cumsum:
        inc = t.cumsum(dim)
        if reverse:  # sum_{j>i} = total - sum_{j<=i}
            return t.copy_(inc.narrow(dim, length - 1, 1).sub(inc))
        return t.copy_(inc.sub_(t))
    order = range(length - 2, -1, -1) if reverse else range(1, length)
    prev = t.select(dim, length - 1 if reverse else 0).clone()
    t.select(dim, length - 1 if reverse else 0).zero_()
    for i in order:
        cur = t.select(dim, i)
        nxt = cur.clone()
        cur.copy_(prev)
        prev.add_(nxt)
    return t


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched matmul over all leading dims (a, b may be transposed views)."""
    return torch.matmul(a, b)


def _bmm_add_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out += a @ b in place, as one baddbmm over the flattened leading dims (no temporary)."""
    o3 = out.view(-1, *out.shape[-2:])
    o3.baddbmm_(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return out


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


class _ChunkedCausalLinear(torch.autograd.Function):
    """Chunked causal linear attention with a hand-written backward.

    Saves only the chunked inputs, the output and the normaliser (O(N (M + 2E)) floats); the C x C
    scores and the chunk states are recomputed chunk-parallel in backward, as flash-linear-attention
    does, and gradients are accumulated in place (baddbmm) so no O(N M E / C) temporaries pile up.
    """

    @staticmethod
    def forward(ctx, phi_q, phi_k, v, chunk_size: int, eps: float):  # type: ignore[override]
        n = phi_q.shape[1]
        c = min(chunk_size, n)
        q, k, vv = _to_chunks(phi_q, c), _to_chunks(phi_k, c), _to_chunks(v, c)
        q, k, vv = q.contiguous(), k.contiguous(), vv.contiguous()
        tril = torch.ones(c, c, dtype=q.dtype, device=q.device).tril()
        a = _bmm(q, _t(k)).mul_(tril)  # (B,H,L,C,C) masked intra-chunk scores
        num = _bmm(a, vv)
        den = a.sum(-1)
        del a
        s_prev = _exclusive_cumsum_(_bmm(_t(k), vv), dim=2)  # (B,H,L,M,E) states before each chunk
        _bmm_add_(num, q, s_prev)
        del s_prev
        z_prev = _exclusive_cumsum_(k.sum(dim=3), dim=2)  # (B,H,L,M)
        den.add_(_bmm(q, z_prev.unsqueeze(-1)).squeeze(-1)).add_(eps)
        out = num.div_(den.unsqueeze(-1))
        ctx.save_for_backward(q, k, vv, out, den)
        ctx.n = n
        return _from_chunks(out, n)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, vv, out, den = ctx.saved_tensors
        n, c = ctx.n, q.shape[-2]
        tril = torch.ones(c, c, dtype=q.dtype, device=q.device).tril()
        g = _to_chunks(grad_out, c)
        # out = num / den: d num = g / den; d den = -(g . out) / den
        inv = den.reciprocal()
        dnum = g * inv.unsqueeze(-1)  # (B,H,L,C,E)
        dden = torch.linalg.vecdot(g, out).mul_(inv).neg_()  # (B,H,L,C)
        del g, inv
        # intra-chunk: num_t = sum_{s<=t} A_ts v_s, den_t = sum_{s<=t} A_ts, A_ts = q_t . k_s
        da = _bmm(dnum, _t(vv)).add_(dden.unsqueeze(-1)).mul_(tril)
        dq = _bmm(da, k)
        dk = _bmm(_t(da), q)
        del da
        a = _bmm(q, _t(k)).mul_(tril)
        dv = _bmm(_t(a), dnum)
        del a
        # inter-chunk: num_t += q_t S_{<c}, den_t += q_t . z_{<c}
        s_prev = _exclusive_cumsum_(_bmm(_t(k), vv), dim=2)
        _bmm_add_(dq, dnum, _t(s_prev))
        del s_prev
        z_prev = _exclusive_cumsum_(k.sum(dim=3), dim=2)  # (B,H,L,M)
        _bmm_add_(dq, dden.unsqueeze(-1), z_prev.unsqueeze(-2))
        ds = _exclusive_cumsum_(_bmm(_t(q), dnum), dim=2, reverse=True)  # grads of later chunks' S
        dz = _exclusive_cumsum_(_bmm(_t(q), dden.unsqueeze(-1)).squeeze(-1), dim=2, reverse=True)
        _bmm_add_(dk, vv, _t(ds))
        dk.add_(dz.unsqueeze(-2))
        _bmm_add_(dv, k, ds)
        return _from_chunks(dq, n), _from_chunks(dk, n), _from_chunks(dv, n), None, None


def causal_linear_chunked(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Causal linear attention, chunkwise parallel, in pure PyTorch (any device, differentiable).

    Per chunk c of C positions: out = [tril(Q_c K_c^T) V_c + Q_c S_{<c}] / [rowsum(tril(Q_c K_c^T))
    + Q_c z_{<c} + eps], where S_{<c}, z_{<c} are exclusive prefix sums of the per-chunk states.
    Memory O(N (C + M E / C)) in forward; backward saves only inputs, output and normaliser.
    """
    check_positive_int("chunked causal linear attention", chunk_size=chunk_size)
    if phi_q.shape[1] == 0:
        return v.new_zeros(v.shape)
    return _ChunkedCausalLinear.apply(phi_q, phi_k, v, chunk_size, eps)


def _causal_linear_fla(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
    """fla's chunked Triton kernel for the numerator; the normaliser from a cumsum of phi_k (O(N M))."""
    res = _fla_chunk_linear_attn(phi_q, phi_k, v, scale=1.0, normalize=False)
    num = res[0] if isinstance(res, tuple) else res
    den = (phi_q * phi_k.cumsum(dim=1)).sum(-1)
    return num / (den.unsqueeze(-1).to(num.dtype) + eps)


_fla_failed = False


def causal_linear_attention(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    eps: float = DEFAULT_EPS,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal linear attention: fla on CUDA when installed ("auto"), else the PyTorch chunked form."""
    global _fla_failed
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "fla" and not (fla_available() and phi_q.is_cuda):
        raise ValueError("backend='fla' needs the fla-core package (pip install fla-core) and CUDA tensors")
    # fla refuses sequences shorter than the head count (it suspects a head-first layout); short
    # sequences gain nothing from it anyway
    long_enough = phi_q.shape[1] >= max(phi_q.shape[2], DEFAULT_CHUNK)
    use_fla = backend == "fla" or (
        backend == "auto" and fla_available() and phi_q.is_cuda and long_enough and not _fla_failed
    )
    if use_fla:
        try:
            return _causal_linear_fla(phi_q, phi_k, v, eps)
        except Exception as err:  # noqa: BLE001 - e.g. a feature size the kernel does not support
            if backend == "fla":
                raise
            _fla_failed = True
            warnings.warn(f"fla chunk_linear_attn failed ({err!r}); using the PyTorch chunked path", stacklevel=2)
    return causal_linear_chunked(phi_q, phi_k, v, chunk_size=chunk_size, eps=eps)


# ----------------------------------------------------------------------------- recurrent


def init_linear_state(
    batch_size: int,
    num_heads: int,
    num_features: int,
    value_dim: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> LinearState:
    dtype = dtype or torch.get_default_dtype()
    return LinearState(
        S=torch.zeros(batch_size, num_heads, num_features, value_dim, device=device, dtype=dtype),
        z=torch.zeros(batch_size, num_heads, num_features, device=device, dtype=dtype),
    )


def linear_step(
    phi_q_t: torch.Tensor, phi_k_t: torch.Tensor, v_t: torch.Tensor, state: LinearState, eps: float = DEFAULT_EPS
) -> tuple[torch.Tensor, LinearState]:
    """One causal step: S += phi_k v^T, z += phi_k; out = phi_q S / (phi_q . z + eps). (B,H,·) tensors."""
    s = torch.baddbmm(
        state.S.flatten(0, 1), phi_k_t.flatten(0, 1).unsqueeze(-1), v_t.flatten(0, 1).unsqueeze(-2)
    ).view_as(state.S)
    z = state.z + phi_k_t
    num = torch.matmul(phi_q_t.unsqueeze(-2), s).squeeze(-2)
    den = (phi_q_t * z).sum(-1, keepdim=True)
    return num / (den + eps), LinearState(s, z)
