"""xPos (Sun et al. 2023): rotary embedding with an exponential scaling, q by zeta^(n/s), k by zeta^(-n/s).

q̂_m · k̂_n then carries zeta^((m - n)/s): the rotary phase and a decay with the distance, both relative.
zeta_i = (2i/D + gamma) / (1 + gamma) per rotated pair (gamma = 0.4), s = scale_base.
"""

from __future__ import annotations

import torch

from spelab.nn.positional._checks import check_offset
from spelab.nn.positional.rope import RotaryEmbedding


class XPos(RotaryEmbedding):
    def __init__(
        self, num_heads: int, head_dim: int, base: float = 10000.0, scale_base: float = 512.0, gamma: float = 0.4
    ) -> None:
        super().__init__(num_heads, head_dim, base)
        if not (scale_base > 0 and gamma > 0):
            raise ValueError(f"XPos: scale_base and gamma must be > 0, got {scale_base!r}, {gamma!r}")
        self.scale_base = float(scale_base)
        zeta = (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim + gamma) / (1 + gamma)
        self.register_buffer("log_zeta", zeta.log(), persistent=False)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, code: object = None, offset: int = 0, gate: object = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k = super().forward(q, k, code=code, offset=offset, gate=gate)
        offset = check_offset("XPos", offset)
        n = q.shape[1]
        positions = torch.arange(offset, offset + n, device=q.device, dtype=torch.float64)
        log_scale = positions[:, None] / self.scale_base * self.log_zeta.to(q.device)[None]  # (N, D/2)
        log_scale = torch.cat((log_scale, log_scale), dim=-1)[None, :, None, :]  # half-split layout
        return q * log_scale.exp().to(q.dtype), k * (-log_scale).exp().to(k.dtype)
