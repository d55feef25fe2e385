"""Axial 2-D rotary embedding for images read pixel by pixel (row-major, side x side).

The first half of each head's channels is rotated by the row, the second by the column, so q̂·k̂
depends on (row_i - row_j, col_i - col_j). The side is read from the length: N = side², or
side² + 1 with a [CLS] vector first (left unrotated). Only the 2-D tasks (`tasks`) have such a grid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int, check_qk
from spelab.nn.positional.rope import RotaryEmbedding


class RoPE2D(nn.Module):
    is_relative = True
    tasks = ("image", "pathfinder", "pathx")  # tasks whose sequence is a square image (validation reads it)

    def __init__(self, num_heads: int, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        check_positive_int("RoPE2D", num_heads=num_heads, head_dim=head_dim)
        if head_dim % 4:
            raise ValueError(f"RoPE2D: head_dim must be a multiple of 4 (two axes, pairs of channels), got {head_dim}")
        self.num_heads, self.head_dim = num_heads, head_dim
        self.axis = RotaryEmbedding(num_heads, head_dim // 2, base)  # one rotary per axis, half the channels

    @property
    def key_dim(self) -> int:
        """The width attention sees per head: a rotation keeps head_dim."""
        return self.head_dim

    def draw(self, length: int, device: torch.device | None = None) -> None:
        check_positive_int("RoPE2D.draw", length=length)
        return None

    def make_gate(self) -> None:
        return None

    @staticmethod
    def grid(length: int) -> tuple[int, int]:
        """(side, number of leading non-pixel tokens) for a sequence of `length` tokens."""
        for lead in (0, 1):
            side = math.isqrt(length - lead)
            if side * side == length - lead and side > 0:
                return side, lead
        raise ValueError(
            f"RoPE2D: a sequence of {length} tokens is not a square image (side², or side² + 1 "
            f"with a [CLS] vector); rope2d needs a 2-D task ({', '.join(RoPE2D.tasks)})"
        )

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, code: object = None, offset: int = 0, gate: object = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_qk("RoPE2D", q, k, self.num_heads, self.head_dim)
        offset = check_offset("RoPE2D", offset)
        if code is not None or gate is not None:
            raise ValueError("RoPE2D: takes no code or gate (draw() and make_gate() return None)")
        n = q.shape[1]
        side, lead = self.grid(offset + n)
        pixel = (torch.arange(offset, offset + n, device=q.device) - lead).clamp(min=0)
        rows, cols = (pixel // side).double(), (pixel % side).double()
        rows[: max(lead - offset, 0)] = 0.0  # the [CLS] vector is not rotated
        cols[: max(lead - offset, 0)] = 0.0
        half = self.head_dim // 2
        out = []
        for x in (q, k):
            parts = [self._rotate(x[..., :half], rows), self._rotate(x[..., half:], cols)]
            out.append(torch.cat(parts, dim=-1))
        return out[0], out[1]

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        angle = positions[:, None] * self.axis.inv_freq.to(x.device)[None]
        cos = torch.cos(angle).to(x.dtype)[None, :, None, :]
        sin = torch.sin(angle).to(x.dtype)[None, :, None, :]
        return RotaryEmbedding.rotate(x, cos, sin)
