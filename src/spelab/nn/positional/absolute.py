"""Absolute positional encodings, added to the token embeddings: none, fixed sinusoids, learned table.

All share `__init__(d_model, max_len)` and `forward(x, offset=0)`: x (B, N, d_model) -> x + pe of the
positions offset ... offset+N-1. Class attribute `is_relative = False`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int


def _check_x(owner: str, x: torch.Tensor, d_model: int) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != d_model:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{owner}: x must be a (batch, length, d_model={d_model}) tensor, got {shape}")


def sinusoidal_table(positions: torch.Tensor, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """Vaswani et al.'s encoding: pe[t, 2i] = sin(t / base^(2i/d)), pe[t, 2i+1] = cos(same)."""
    half = (d_model + 1) // 2
    inv_freq = torch.exp(
        torch.arange(half, dtype=torch.float64, device=positions.device) * (-2.0 * math.log(base) / d_model)
    )
    angle = positions.to(torch.float64)[:, None] * inv_freq[None]
    pe = torch.stack((torch.sin(angle), torch.cos(angle)), dim=-1).reshape(len(positions), 2 * half)
    return pe[:, :d_model]


class NoPositionalEncoding(nn.Module):
    """No positional information: forward returns x unchanged (the 'none' ablation)."""

    is_relative = False

    def __init__(self, d_model: int, max_len: int = 2048) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, d_model=d_model, max_len=max_len)
        self.d_model, self.max_len = d_model, max_len

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x(type(self).__name__, x, self.d_model)
        check_offset(type(self).__name__, offset)
        return x


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoids; a table up to max_len, computed on the fly beyond it (extrapolation)."""

    is_relative = False

    def __init__(self, d_model: int, max_len: int = 2048, base: float = 10000.0) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, d_model=d_model, max_len=max_len)
        if not base > 0:
            raise ValueError(f"{type(self).__name__}: base must be > 0, got {base!r}")
        self.d_model, self.max_len, self.base = d_model, max_len, float(base)
        # not persistent: it is a function of the arguments, so checkpoints need not carry it
        table = sinusoidal_table(torch.arange(max_len), d_model, self.base).to(torch.get_default_dtype())
        self.register_buffer("table", table, persistent=False)

    def encoding(self, offset: int, length: int, device: torch.device | None = None) -> torch.Tensor:
        """(length, d_model) encoding of positions offset ... offset+length-1."""
        if offset + length <= self.max_len:
            return self.table[offset : offset + length]
        positions = torch.arange(offset, offset + length, device=device or self.table.device)
        return sinusoidal_table(positions, self.d_model, self.base).to(self.table.dtype)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x(type(self).__name__, x, self.d_model)
        offset = check_offset(type(self).__name__, offset)
        return x + self.encoding(offset, x.shape[1], x.device).to(device=x.device, dtype=x.dtype)


class LearnedPositionalEncoding(nn.Module):
    """A trainable (max_len, d_model) table; positions >= max_len have no entry and raise."""

    is_relative = False

    def __init__(self, d_model: int, max_len: int = 2048, init_std: float = 0.02) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, d_model=d_model, max_len=max_len)
        self.d_model, self.max_len = d_model, max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * init_std)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x(type(self).__name__, x, self.d_model)
        offset = check_offset(type(self).__name__, offset)
        end = offset + x.shape[1]
        if end > self.max_len:
            raise ValueError(
                f"{type(self).__name__}: positions {offset}..{end - 1} go beyond max_len={self.max_len}; "
                "a learned table has no entry there (build it with a larger max_len, or use "
                "sinusoidal/relative encodings to extrapolate)"
            )
        return x + self.weight[offset:end].to(x.dtype)
