"""Argument checks shared by the attention backends (clear ValueErrors that name the argument)."""

from __future__ import annotations

import torch

from spelab.nn._checks import check_positive_int


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_dim: int) -> None:
    """q, k (B,N,H,Dk) with Dk == key_dim; v (B,N,H,Dv) with the same B, N, H."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 4-D tensor (batch, length, heads, dim), got {shape}")
    if q.shape[:3] != k.shape[:3] or q.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"q, k, v must share (batch, length, heads): got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != key_dim or k.shape[-1] != key_dim:
        raise ValueError(
            f"the last dim of q and k must equal key_dim={key_dim} (the key dimension the backend "
            f"receives, R after SPE), got q {q.shape[-1]}, k {k.shape[-1]}"
        )


def check_step(q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, key_dim: int) -> None:
    """q_t, k_t (B,H,Dk); v_t (B,H,Dv)."""
    for name, t in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 3-D tensor (batch, heads, dim), got {shape}")
    if q_t.shape[:2] != k_t.shape[:2] or q_t.shape[:2] != v_t.shape[:2]:
        raise ValueError(
            f"q_t, k_t, v_t must share (batch, heads): got {tuple(q_t.shape)}, {tuple(k_t.shape)}, {tuple(v_t.shape)}"
        )
    if q_t.shape[-1] != key_dim or k_t.shape[-1] != key_dim:
        raise ValueError(
            f"the last dim of q_t and k_t must equal key_dim={key_dim}, got {q_t.shape[-1]}, {k_t.shape[-1]}"
        )


def check_padding_mask(mask: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor | None:
    """key_padding_mask: bool (B,N), True = padding. Returns it on q's device (or None)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"key_padding_mask must be a bool tensor (True = padding), got {got}")
    if tuple(mask.shape) != tuple(q.shape[:2]):
        raise ValueError(
            f"key_padding_mask must have shape (batch, length) = {tuple(q.shape[:2])}, got {tuple(mask.shape)}"
        )
    return mask.to(q.device)


def check_state_args(batch_size: object, num_heads: object, value_dim: object) -> None:
    """The sizes `init_state` takes, each a positive int."""
    check_positive_int("init_state", batch_size=batch_size, num_heads=num_heads, value_dim=value_dim)
