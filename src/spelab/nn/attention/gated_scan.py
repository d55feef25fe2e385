"""Gated linear recurrence S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = q_t S_t (all in (B, N, H, ·)).

`chunk_gated_scan` is the chunked form (O(N) memory, a Python loop over N/C chunks only);
`naive_gated_scan` is the token-by-token reference beside it; `bidirectional_gated_scan` (both
directions, for the non-causal backends) has `naive_bidirectional_gated_scan`, the pairwise weights
written out. `log_g` (<= 0) broadcasts to
(B, N, H, Dk); a last dim of 1 (one decay per head and token) takes a cheaper path. GLA uses it with
data-dependent gates, the linear backends with the fixed decay of pos_enc=decay.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 64
# Chunk length when the gate has one value per channel: the weights inside a chunk are then a
# (C, C, Dk) tensor per chunk (B·N·C·Dk elements in all, several such temporaries for autograd) where
# a per-head gate needs (C, C). On a 2-core CPU (B=32, N=96, H=8, Dk=64, bidirectional, fwd+bwd) C=64
# took 23 s, C=16 1.5-2.6 s, C=8 0.63-0.74 s; at B=4, N=1024, C=8 1.6 s, C=16 2.2 s, C=4 1.9 s.
PER_CHANNEL_CHUNK = 8


def naive_gated_scan(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: one token at a time. Returns (o (B,N,H,Dv), final state (B,H,Dk,Dv))."""
    b, n, h, dk = q.shape
    log_g = log_g.expand(b, n, h, log_g.shape[-1])
    s = q.new_zeros(b, h, dk, v.shape[-1]) if state is None else state
    out = []
    for t in range(n):
        s = log_g[:, t].exp()[..., None] * s + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append(torch.einsum("bhd,bhde->bhe", q[:, t], s))
    return torch.stack(out, dim=1), s


def chunk_gated_scan(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_g: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as `naive_gated_scan`; every exponent is <= 0, so nothing overflows. A gate per
    channel runs in chunks of at most PER_CHANNEL_CHUNK (see there)."""
    b, n, h, dk = q.shape
    dv = v.shape[-1]
    scalar = log_g.shape[-1] == 1
    log_g = log_g.expand(b, n, h, log_g.shape[-1])
    c = min(chunk_size if scalar else min(chunk_size, PER_CHANNEL_CHUNK), n)
    pad = (-n) % c
    if pad:  # zero keys and no decay: the padded tail changes nothing
        q, k, v, log_g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, log_g))
    m = (n + pad) // c
    q, k, v, g = (x.reshape(b, m, c, h, x.shape[-1]).permute(0, 3, 1, 2, 4) for x in (q, k, v, log_g))
    cum = g.cumsum(-2)  # (B,H,M,C,Dk|1) decay from chunk start
    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    if scalar:
        diff = (cum[..., :, None, 0] - cum[..., None, :, 0]).masked_fill(~causal, float("-inf"))
        scores = (q @ k.transpose(-1, -2)) * diff.exp()
    else:
        diff = (cum[..., :, None, :] - cum[..., None, :, :]).masked_fill(~causal[..., None], float("-inf"))
        scores = (q[..., :, None, :] * k[..., None, :, :] * diff.exp()).sum(-1)
    o = scores @ v  # within each chunk
    q_in = q * cum.exp()  # reads the state left by earlier chunks
    k_out = k * (cum[..., -1:, :] - cum).exp()  # decayed to the chunk's end
    last = cum[..., -1, :].exp()  # (B,H,M,Dk|1)
    s = q.new_zeros(b, h, dk, dv) if state is None else state
    inter = []
    for i in range(m):
        inter.append(q_in[:, :, i] @ s)
        s = last[:, :, i, :, None] * s + k_out[:, :, i].transpose(-1, -2) @ v[:, :, i]
    o = o + torch.stack(inter, dim=2)
    return o.permute(0, 2, 3, 1, 4).reshape(b, m * c, h, dv)[:, :n], s


def naive_bidirectional_gated_scan(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor
) -> torch.Tensor:
    """Reference of `bidirectional_gated_scan`: o_t = Σ_s Σ_d q_td k_sd v_s exp(Σ log_g over the gates
    between t and s), gates s+1..t when s <= t and t..s-1 when s > t, from the (B, N, N, H, Dk)
    weights written out. O(N²) memory."""
    b, n, h, dk = q.shape
    log_g = log_g.expand(b, n, h, log_g.shape[-1])
    cum = log_g.cumsum(1)  # (B, N, H, ·): gates 1..t
    before = cum - log_g  # gates 1..t-1
    t, s = torch.arange(n, device=q.device)[:, None], torch.arange(n, device=q.device)[None]
    past = (s <= t)[None, :, :, None, None]
    exponent = torch.where(past, cum[:, :, None] - cum[:, None, :], before[:, None, :] - before[:, :, None])
    weights = torch.einsum("bthd,bshd,btshd->bths", q, k, exponent.exp().expand(b, n, n, h, dk))
    return torch.einsum("bths,bshe->bthe", weights, v)


def bidirectional_gated_scan(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, chunk_size: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """sum over all s of q_t k_s v_s times the gates between them: a forward scan plus a backward scan
    (the sequence reversed), minus the diagonal term that both count. Exact, not an approximation."""
    fwd, _ = chunk_gated_scan(q, k, v, log_g, chunk_size)
    flip = lambda x: x.flip(1)  # noqa: E731
    bwd, _ = chunk_gated_scan(flip(q), flip(k), flip(v), flip(log_g.expand(*q.shape[:3], log_g.shape[-1])), chunk_size)
    diag = (q * k).sum(-1, keepdim=True) * v
    return fwd + flip(bwd) - diag
