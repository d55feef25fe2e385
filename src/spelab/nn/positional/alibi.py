"""ALiBi (Press et al. 2022): logit bias -m_h |i - j| with the standard geometric slopes."""

from __future__ import annotations

import math

import torch

from spelab.nn.positional.bias import BiasScheme, distance


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """2^(-8h/H) for h = 1..H when H is a power of two; otherwise the powers-of-two slopes of the
    closest smaller power, completed by every other slope of the next one (the reference recipe)."""

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    closest = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = power_of_two(closest)
    if closest < num_heads:
        slopes += power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBi(BiasScheme):
    """Fixed slopes (a buffer, not learned); causal attention sees -m_h (i - j)."""

    def __init__(self, num_heads: int, head_dim: int) -> None:
        super().__init__(num_heads, head_dim)
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def bias_at(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return -self.slopes[h] * distance(i, j)
