"""Rotary position embedding (RoFormer): rotate q and k by position, so q̂_m·k̂_n depends on m - n."""

from __future__ import annotations

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int, check_qk


class RotaryEmbedding(nn.Module):
    """Relative scheme with the same interface as SPE; deterministic, so `draw()` returns None.

    Feature pairs (i, i + D/2) are rotated by the angle position * base^(-2i/D) (the "half-split"
    layout). `offset` shifts the positions, so one-token-at-a-time decoding matches the full pass.
    """

    is_relative = True

    def __init__(self, num_heads: int, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, num_heads=num_heads, head_dim=head_dim)
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even (features are rotated in pairs), got {head_dim}")
        if not base > 0:
            raise ValueError(f"RotaryEmbedding: base must be > 0, got {base!r}")
        self.num_heads, self.head_dim, self.base = num_heads, head_dim, float(base)
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @property
    def key_dim(self) -> int:
        """The width attention sees per head: a rotation keeps head_dim."""
        return self.head_dim

    def draw(self, length: int, device: torch.device | None = None) -> None:
        check_positive_int("RotaryEmbedding.draw", length=length)
        return None

    def make_gate(self) -> None:
        return None

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, code: object = None, offset: int = 0, gate: object = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_qk("RotaryEmbedding", q, k, self.num_heads, self.head_dim)
        offset = check_offset("RotaryEmbedding", offset)
        if code is not None or gate is not None:
            raise ValueError("RotaryEmbedding: takes no code or gate (draw() and make_gate() return None)")
        n = q.shape[1]
        positions = torch.arange(offset, offset + n, device=q.device, dtype=torch.float64)
        angle = positions[:, None] * self.inv_freq.to(q.device)[None]  # (N, D/2), fp64 for large offsets
        cos = torch.cos(angle).to(q.dtype)[None, :, None, :]
        sin = torch.sin(angle).to(q.dtype)[None, :, None, :]
        return self.rotate(q, cos, sin), self.rotate(k, cos, sin)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
