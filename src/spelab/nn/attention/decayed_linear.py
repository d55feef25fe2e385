"""Kernel attention (linear, Performer) with RetNet's per-head decay: pair (t, s) weighted gamma_h^|t-s|.

out_t = sum_s gamma^|t-s| phi(q_t).phi(k_s) v_s / (sum_s gamma^|t-s| phi(q_t).phi(k_s) + eps). The
normaliser rides along as an extra value column of ones, so one gated scan gives both sums: causal is
one scan, bidirectional a forward and a backward scan minus the diagonal (gated_scan.py).
"""

from __future__ import annotations

from typing import Any

import torch

from .causal_linear import LinearState
from .gated_scan import bidirectional_gated_scan, chunk_gated_scan


def decayed_linear_attention(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    causal: bool,
    chunk_size: int,
    eps: float,
) -> torch.Tensor:
    """phi_q, phi_k (B,N,H,M), v (B,N,H,Dv), log_decay (H,) -> (B,N,H,Dv)."""
    v_aug = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    log_g = log_decay.to(v.dtype)[None, None, :, None]
    if causal:
        o, _ = chunk_gated_scan(phi_q, phi_k, v_aug, log_g, chunk_size)
    else:
        o = bidirectional_gated_scan(phi_q, phi_k, v_aug, log_g, chunk_size)
    return o[..., :-1] / (o[..., -1:] + eps)


def decay_state(state: LinearState, log_decay: torch.Tensor) -> LinearState:
    """The recurrent (S, z) state one step older: both multiplied by gamma_h."""
    gamma = log_decay.to(state.S).exp()
    return LinearState(state.S * gamma[:, None, None], state.z * gamma[:, None])


def head_decay(bias: Any, owner: str) -> torch.Tensor | None:
    """Per-head log gamma from a `bias=` the linear backends accept (pos_enc=decay), else a clear error."""
    if bias is None:
        return None
    log_decay = bias.log_decay() if hasattr(bias, "log_decay") else None
    if log_decay is None:
        raise ValueError(
            f"{owner}: cannot add the logit bias {type(bias).__name__} (it needs the attention "
            f"matrix; backends that take it: {', '.join(bias.backends or ('all',))})"
        )
    return log_decay
