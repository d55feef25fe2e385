"""Argument checks shared by the positional schemes: clear ValueErrors naming the argument."""

from __future__ import annotations

import torch

from spelab.nn._checks import check_positive_int

__all__ = ["check_offset", "check_positive_int", "check_qk"]


def check_offset(owner: str, offset: object) -> int:
    """`offset` must be a non-negative int (a 0-d integer tensor is accepted)."""
    if isinstance(offset, torch.Tensor) and offset.ndim == 0 and not offset.is_floating_point():
        offset = int(offset)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"{owner}: offset must be a non-negative integer, got {offset!r}")
    return offset


def check_qk(owner: str, q: torch.Tensor, k: torch.Tensor, num_heads: int, head_dim: int) -> None:
    """q and k must be (B, N, H, D) tensors of identical shape with H=num_heads, D=head_dim."""
    for name, x in (("q", q), ("k", k)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{owner}: {name} must be a (batch, length, heads, head_dim) tensor, got {shape}")
    if q.shape != k.shape:
        raise ValueError(f"{owner}: q and k must have the same shape, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if q.shape[2] != num_heads or q.shape[3] != head_dim:
        raise ValueError(
            f"{owner}: q/k must have heads={num_heads} and head_dim={head_dim} in dims 2 and 3, "
            f"got shape {tuple(q.shape)}"
        )
    if q.shape[1] == 0:
        raise ValueError(f"{owner}: q/k must have at least one position, got length 0")
