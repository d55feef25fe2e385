"""Exponential decay (RetNet's multi-scale retention): weight gamma_h^|i - j| on the pair (i, j).

Softmax takes it as the logit bias |i - j| log gamma_h; the linear backends (linear, performer, gla,
deltanet) as a decayed state, read from `log_decay` (causal: one scan; bidirectional: two).
gamma_h = 1 - 2^(-5 - h) for head h = 0..H-1 (fixed, as in RetNet).
"""

from __future__ import annotations

import torch

from spelab.nn.positional.bias import BiasScheme, distance


class ExponentialDecay(BiasScheme):
    backends = None  # every backend takes it

    def __init__(self, num_heads: int, head_dim: int, min_exponent: float = 5.0) -> None:
        super().__init__(num_heads, head_dim)
        if not min_exponent > 0:
            raise ValueError(f"ExponentialDecay: min_exponent must be > 0, got {min_exponent!r}")
        gamma = 1.0 - 2.0 ** (-float(min_exponent) - torch.arange(num_heads, dtype=torch.float64))
        self.register_buffer("log_gamma", gamma.log().float(), persistent=False)

    def log_decay(self) -> torch.Tensor:
        return self.log_gamma

    def bias_at(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return self.log_gamma[h] * distance(i, j)
