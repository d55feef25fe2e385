"""KERPLE, logarithmic variant (Chi et al. 2022): logit bias -r1_h log(1 + r2_h |i - j|), r1, r2 > 0 learned."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spelab.nn.positional.bias import BiasScheme, distance


def _inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class KERPLE(BiasScheme):
    """r1, r2 are kept positive through softplus; r2 starts spread over heads (different ranges)."""

    def __init__(self, num_heads: int, head_dim: int, init_r1: float = 1.0) -> None:
        super().__init__(num_heads, head_dim)
        if not init_r1 > 0:
            raise ValueError(f"KERPLE: init_r1 must be > 0, got {init_r1!r}")
        r2 = torch.logspace(0, -2, num_heads) if num_heads > 1 else torch.ones(1)
        self.r1_raw = nn.Parameter(_inverse_softplus(torch.full((num_heads,), float(init_r1))))
        self.r2_raw = nn.Parameter(_inverse_softplus(r2))

    def bias_at(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        r1, r2 = F.softplus(self.r1_raw)[h], F.softplus(self.r2_raw)[h]
        return -r1 * torch.log1p(r2 * distance(i, j))
