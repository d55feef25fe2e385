"""Linear attention kernels on feature-mapped queries/keys: bidirectional, causal chunked, recurrent.

All functions take phi_q, phi_k (B,N,H,M) (non-negative features) and v (B,N,H,E) and return
(B,N,H,E): out_t = sum_s a_ts v_s / (sum_s a_ts + eps), a_ts = phi_q[t] . phi_k[s], over s <= t when
causal. A row with no weight at all (every key padded) gives 0, never NaN.

Causal forms (research/perf.md §2.1):
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


def linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Non-causal: phi_q (phi_k^T v) / (phi_q . sum phi_k + eps); O(N M E) flops, O(N (M+E)) memory."""
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


def causal_linear_naive(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Reference: prefix sums of the outer products phi_k v^T; materialises (B,N,H,M,E)."""
    s = torch.einsum("bnhm,bnhe->bnhme", phi_k, v).cumsum(dim=1)
    z = phi_k.cumsum(dim=1)
    num = torch.einsum("bnhm,bnhme->bnhe", phi_q, s)
    den = (phi_q * z).sum(-1)
    return num / (den.unsqueeze(-1) + eps)


# ----------------------------------------------------------------------------- chunked


def causal_linear_chunked(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Causal linear attention, chunkwise parallel, in pure PyTorch (any device, differentiable).

    Per chunk c of C positions: out = [tril(Q_c K_c^T) V_c + Q_c S_{<c}] / [rowsum(tril(Q_c K_c^T))
    + Q_c z_{<c}], where S_{<c}, z_{<c} are exclusive prefix sums of the per-chunk states.
    """
    check_positive_int("chunk_size", chunk_size)
    b, n, h, m = phi_q.shape
    e = v.shape[-1]
    c = min(chunk_size, n)
    pad = (-n) % c
    # (B,H,N,·): heads next to batch so every chunk product is one batched matmul.
    q, k, vv = (t.permute(0, 2, 1, 3) for t in (phi_q, phi_k, v))
    if pad:  # zero features/values at the end: they add nothing, and their outputs are dropped
        q, k, vv = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (q, k, vv))
    nc = (n + pad) // c
    q = q.reshape(b, h, nc, c, m)
    k = k.reshape(b, h, nc, c, m)
    vv = vv.reshape(b, h, nc, c, e)

    # intra-chunk: masked C x C products
    a = torch.matmul(q, k.transpose(-1, -2))  # (B,H,L,C,C)
    a = a * torch.ones(c, c, dtype=a.dtype, device=a.device).tril()
    num = torch.matmul(a, vv)
    den = a.sum(-1)

    # inter-chunk: states at chunk boundaries only (B,H,L,M,E), exclusive prefix sum over chunks
    if nc > 1:
        kv = torch.matmul(k.transpose(-1, -2), vv)  # (B,H,L,M,E)
        s_prev = kv.cumsum(dim=2) - kv
        z_chunk = k.sum(dim=3)  # (B,H,L,M)
        z_prev = z_chunk.cumsum(dim=2) - z_chunk
        num = num + torch.matmul(q, s_prev)
        den = den + torch.matmul(q, z_prev.unsqueeze(-1)).squeeze(-1)

    out = num / (den.unsqueeze(-1) + eps)
    out = out.reshape(b, h, nc * c, e)[:, :, :n]
    return out.permute(0, 2, 1, 3)


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
    use_fla = backend == "fla" or (backend == "auto" and fla_available() and phi_q.is_cuda and not _fla_failed)
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
    s = state.S + phi_k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    z = state.z + phi_k_t
    num = torch.einsum("bhm,bhme->bhe", phi_q_t, s)
    den = (phi_q_t * z).sum(-1, keepdim=True)
    return num / (den + eps), LinearState(s, z)
