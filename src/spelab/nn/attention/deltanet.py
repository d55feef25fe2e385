"""DeltaNet (Schlag et al. 2021; chunked form of Yang et al. 2024): linear attention with the delta rule.

S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t,
with q, k L2-normalised per head, beta_t = sigmoid(w . k_t + b) (the backend only sees q, k, v, so
beta is read from the key) and a_t = 1, or the head's gamma with pos_enc=decay (the gated delta rule).

`chunk_delta_rule`: within a chunk the writes w_t = beta_t (v_t - a_t S_{t-1}^T k_t) solve one unit
lower-triangular system (the WY form), so only the N/C chunk boundaries are sequential; O(N) memory.
`naive_delta_rule` is the token-by-token reference. Bidirectional: the mean of a forward and a
backward scan (the delta rule is not linear in its inputs, so the two are averaged, not summed).
fla's chunk_delta_rule is used when fla-core is importable and the tensors are on CUDA (not exercised
on CPU-only machines; no decay there).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int, check_step
from ._kernel_base import ScanAttention, fla_op
from .decayed_linear import head_decay
from .gated_scan import DEFAULT_CHUNK


def naive_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_a: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference. q, k (B,N,H,Dk), v (B,N,H,Dv), beta and log_a (B,N,H). Returns (o, state (B,H,Dk,Dv))."""
    b, n, h, dk = q.shape
    s = q.new_zeros(b, h, dk, v.shape[-1]) if state is None else state
    out = []
    for t in range(n):
        if log_a is not None:
            s = log_a[:, t].exp()[..., None, None] * s
        k_t = k[:, t]
        write = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhd,bhde->bhe", k_t, s))
        s = s + k_t[..., :, None] * write[..., None, :]
        out.append(torch.einsum("bhd,bhde->bhe", q[:, t], s))
    return torch.stack(out, dim=1), s


def chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_a: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as `naive_delta_rule`."""
    b, n, h, dk = q.shape
    dv = v.shape[-1]
    log_a = q.new_zeros(b, n, h) if log_a is None else log_a
    c = min(chunk_size, n)
    pad = (-n) % c
    if pad:  # beta = 0 and no decay: the padded tail writes nothing
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        beta, log_a = (F.pad(x, (0, 0, 0, pad)) for x in (beta, log_a))
    m = (n + pad) // c
    q, k, v = (x.reshape(b, m, c, h, x.shape[-1]).permute(0, 3, 1, 2, 4) for x in (q, k, v))  # (B,H,M,C,D)
    beta, log_a = (x.reshape(b, m, c, h).permute(0, 3, 1, 2) for x in (beta, log_a))  # (B,H,M,C)
    cum = log_a.cumsum(-1)
    lower = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~lower, float("-inf")).exp()  # a_{j+1..i}
    strict = decay.masked_fill(torch.eye(c, dtype=torch.bool, device=q.device), 0.0)
    system = torch.eye(c, dtype=q.dtype, device=q.device) + beta[..., None] * (k @ k.transpose(-1, -2)) * strict
    rhs = beta[..., None] * torch.cat([v, cum.exp()[..., None] * k], dim=-1)
    solved = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
    u, w_k = solved[..., :dv], solved[..., dv:]  # writes = u - w_k S_chunk_start
    scores = (q @ k.transpose(-1, -2)) * decay
    q_in = q * cum.exp()[..., None]
    k_out = k * (cum[..., -1:] - cum).exp()[..., None]
    s = q.new_zeros(b, h, dk, dv) if state is None else state
    out = []
    for i in range(m):
        writes = u[:, :, i] - w_k[:, :, i] @ s
        out.append(q_in[:, :, i] @ s + scores[:, :, i] @ writes)
        s = cum[:, :, i, -1].exp()[..., None, None] * s + k_out[:, :, i].transpose(-1, -2) @ writes
    o = torch.stack(out, dim=2)
    return o.permute(0, 2, 3, 1, 4).reshape(b, m * c, h, dv)[:, :n], s


class DeltaNetAttention(ScanAttention):
    """Args: key_dim (the width of q and k per head: R after SPE, else head_dim),
    chunk_size of the chunked form."""

    name = "deltanet"  # its option in conf/attention/ (pos_enc schemes list the options that take them)

    def __init__(self, key_dim: int, chunk_size: int = DEFAULT_CHUNK) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, key_dim=key_dim, chunk_size=chunk_size)
        self.key_dim, self.chunk_size = key_dim, chunk_size
        self.beta = nn.Linear(key_dim, 1)

    def _inputs(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        beta = torch.sigmoid(self.beta(k))[..., 0]
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), beta

    def _forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
        bias: Any,
    ) -> torch.Tensor:
        log_decay = head_decay(bias, "DeltaNetAttention")
        q, k, beta = self._inputs(q, k)
        log_a = None if log_decay is None else log_decay.to(q.dtype).expand(*q.shape[:3])
        if mask is not None:  # a padded token writes nothing and decays nothing
            beta = beta.masked_fill(mask[..., None], 0.0)
            if log_a is not None:
                log_a = log_a.masked_fill(mask[..., None], 0.0)
        fla = fla_op("ops.delta_rule", "chunk_delta_rule") if q.is_cuda and causal and log_a is None else None
        if fla is not None:
            return fla(q, k, v, beta, scale=1.0)[0]
        o, _ = chunk_delta_rule(q, k, v, beta, log_a, self.chunk_size)
        if causal:
            return o
        flip = lambda x: None if x is None else x.flip(1)  # noqa: E731
        back, _ = chunk_delta_rule(flip(q), flip(k), flip(v), flip(beta), flip(log_a), self.chunk_size)
        return 0.5 * (o + back.flip(1))

    def step(
        self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: torch.Tensor, bias: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token: (B,H,Dk), (B,H,Dk), (B,H,Dv) -> (B,H,Dv), new state; equals the causal forward."""
        check_step(q_t, k_t, v_t, self.key_dim)
        log_decay = head_decay(bias, "DeltaNetAttention")
        q_t, k_t, beta = self._inputs(q_t, k_t)
        if log_decay is not None:
            state = log_decay.to(state).exp()[:, None, None] * state
        write = beta[..., None] * (v_t - torch.einsum("bhd,bhde->bhe", k_t, state))
        state = state + k_t[..., :, None] * write[..., None, :]
        return torch.einsum("bhd,bhde->bhe", q_t, state), state

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, chunk_size={self.chunk_size}"
