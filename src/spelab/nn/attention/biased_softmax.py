"""Softmax attention with an additive logit bias (ALiBi, KERPLE, FIRE, decay).

Two paths, chosen per call and logged once each (never silently):
- "flex": on CUDA with torch's FlexAttention and a bias whose formula is elementwise (`flex_ok`),
  the bias is a `score_mod`; with padding or causality a block mask; memory stays O(N).
- "dense": elsewhere an (H, N, N) float mask is built and passed to SDPA (fine at CPU sizes).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
_LOGGED: set[str] = set()


def _log_path(path: str, bias: Any, why: str) -> None:
    if path not in _LOGGED:
        _LOGGED.add(path)
        log.info("softmax + %s: %s path (%s)", type(bias).__name__, path, why)


def _flex():
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except Exception:
        return None
    return flex_attention, create_block_mask


def _flex_path(qh, kh, vh, mask, causal, bias, scale):  # pragma: no cover - CUDA only
    flex_attention, create_block_mask = _flex()

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias.bias_at(h, q_idx, kv_idx)

    block_mask = None
    if mask is not None or causal:

        def keep(b, h, q_idx, kv_idx):
            ok = ~mask[b, kv_idx] if mask is not None else q_idx >= 0
            return ok & (kv_idx <= q_idx) if causal else ok

        n = qh.shape[2]
        block_mask = create_block_mask(
            keep, B=qh.shape[0] if mask is not None else None, H=None, Q_LEN=n, KV_LEN=n, device=qh.device
        )
    return flex_attention(qh, kh, vh, score_mod=score_mod, block_mask=block_mask, scale=scale)


def biased_attention(
    qh: torch.Tensor,
    kh: torch.Tensor,
    vh: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    bias: Any,
    scale: float,
    dropout_p: float,
) -> torch.Tensor:
    """qh, kh, vh (B,H,N,D); mask bool (B,N), True = padding -> (B,H,N,Dv). Rows with no key give 0."""
    n = qh.shape[2]
    if qh.is_cuda and getattr(bias, "flex_ok", False) and dropout_p == 0.0 and _flex() is not None:
        _log_path("flex", bias, "CUDA, FlexAttention score_mod, O(N) memory")
        return _flex_path(qh, kh, vh, mask, causal, bias, scale)
    why = (
        "not on CUDA"
        if not qh.is_cuda
        else ("attention dropout" if dropout_p else "FlexAttention missing or the bias is not elementwise")
    )
    _log_path("dense", bias, f"{why}: an explicit (H, N, N) float bias, O(N^2) memory")
    pos = torch.arange(n, device=qh.device)
    logits_bias = bias.dense(pos, pos).to(qh.dtype)[None]  # (1,H,N,N)
    allowed = torch.ones(1, 1, n, n, dtype=torch.bool, device=qh.device)
    if causal:
        allowed = allowed.tril()
    if mask is not None:
        allowed = allowed & ~mask[:, None, None, :]
    empty = ~allowed.any(-1, keepdim=True)
    attn_mask = logits_bias.masked_fill(~(allowed | empty), float("-inf"))
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(empty, 0.0)


def biased_step(q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, bias: Any, scale: float) -> torch.Tensor:
    """One query (B,H,1,D) at position T-1 over the T cached keys (B,H,T,D)."""
    t = kc.shape[2]
    pos = torch.arange(t, device=q.device)
    attn_mask = bias.dense(pos[-1:], pos).to(q.dtype)[None]  # (1,H,1,T)
    return F.scaled_dot_product_attention(q, kc, vc, attn_mask=attn_mask, scale=scale)
