"""CAPE (Likhomanenko et al. 2021): sinusoidal absolute encoding of augmented positions while training.

Training positions are lambda (t + delta + eps_t): a global shift delta ~ U(-max_global_shift,
max_global_shift) per sequence, a local jitter eps_t ~ U(-max_local_shift, max_local_shift) per token,
and a global scale with log lambda ~ U(-log max_scale, log max_scale). Evaluation uses t itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int


def sinusoids(positions: torch.Tensor, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(..., d_model) sin/cos interleaved, for real-valued positions (...)."""
    half = (d_model + 1) // 2
    inv_freq = torch.exp(
        torch.arange(half, dtype=positions.dtype, device=positions.device) * (-2.0 * math.log(base) / d_model)
    )
    angle = positions[..., None] * inv_freq
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)[..., :d_model]


class CAPE(nn.Module):
    is_relative = False

    def __init__(
        self,
        d_model: int,
        max_len: int = 2048,
        max_global_shift: float = 5.0,
        max_local_shift: float = 0.5,
        max_scale: float = 1.03,
        base: float = 10000.0,
    ) -> None:
        super().__init__()
        check_positive_int("CAPE", d_model=d_model, max_len=max_len)
        if max_global_shift < 0 or not 0 <= max_local_shift <= 0.5 or max_scale < 1:
            raise ValueError(
                f"CAPE: need max_global_shift >= 0, max_local_shift in [0, 0.5], max_scale >= 1; "
                f"got {max_global_shift!r}, {max_local_shift!r}, {max_scale!r}"
            )
        self.d_model, self.max_len, self.base = d_model, max_len, float(base)
        self.max_global_shift, self.max_local_shift = float(max_global_shift), float(max_local_shift)
        self.max_scale = float(max_scale)

    def positions(self, batch: int, length: int, offset: int, device: torch.device) -> torch.Tensor:
        """(batch, length) positions: augmented while training, offset..offset+length-1 otherwise."""
        t = torch.arange(offset, offset + length, device=device, dtype=torch.float32).expand(batch, length)
        if not self.training:
            return t
        uniform = lambda *shape: torch.rand(*shape, device=device) * 2 - 1  # noqa: E731
        delta = uniform(batch, 1) * self.max_global_shift
        eps = uniform(batch, length) * self.max_local_shift
        scale = torch.exp(uniform(batch, 1) * math.log(self.max_scale))
        return scale * (t + delta + eps)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"CAPE: x must be a (batch, length, d_model={self.d_model}) tensor, got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        offset = check_offset("CAPE", offset)
        pos = self.positions(x.shape[0], x.shape[1], offset, x.device)
        return x + sinusoids(pos, self.d_model, self.base).to(x.dtype)
