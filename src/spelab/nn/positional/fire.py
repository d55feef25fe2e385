"""FIRE (Li et al. 2024): logit bias f_theta(psi(i - j) / psi(max(L, i))), psi(x) = log(c x + 1).

f_theta is a small MLP (1 -> hidden -> heads); c > 0 and the threshold L are learned. Every layer has
its own MLP: with a shared scheme, `make_gate()` gives the other layers their own copy. The
normaliser depends on the query position i, so FIRE is not purely relative unless i < L. The paper is
causal; bidirectional attention uses |i - j|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spelab.nn.positional.bias import BiasScheme, distance


class FIRE(BiasScheme):
    flex_ok = False  # an MLP over every (i, j): the dense bias is built instead

    def __init__(
        self, num_heads: int, head_dim: int, hidden: int = 32, init_c: float = 0.1, init_threshold: float = 512.0
    ) -> None:
        super().__init__(num_heads, head_dim)
        if not (init_c > 0 and init_threshold > 0) or not isinstance(hidden, int) or hidden <= 0:
            raise ValueError(
                f"FIRE: hidden must be a positive int, init_c and init_threshold > 0; got "
                f"hidden={hidden!r}, init_c={init_c!r}, init_threshold={init_threshold!r}"
            )
        self.hidden, self.init_c, self.init_threshold = hidden, float(init_c), float(init_threshold)
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, num_heads))
        self.c_raw = nn.Parameter(torch.tensor(float(init_c)).expm1().log())  # softplus^-1
        self.threshold = nn.Parameter(torch.tensor(float(init_threshold)))

    def make_gate(self) -> "FIRE":
        return FIRE(self.num_heads, self.head_dim, self.hidden, self.init_c, self.init_threshold)

    def _psi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(F.softplus(self.c_raw) * x)

    def bias_at(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        h, i, j = torch.broadcast_tensors(h, i, j)
        dt = self.c_raw.dtype
        norm = self._psi(torch.maximum(self.threshold.abs(), i.to(dt)))
        x = (self._psi(distance(i, j).to(dt)) / norm)[..., None]  # (..., 1)
        out = self.mlp(x)  # (..., H)
        return out.gather(-1, h.long()[..., None])[..., 0]

    def dense(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        # the MLP once per (i, j), then heads to the front: (H, Nq, Nk)
        i, j = q_pos[:, None], k_pos[None, :]
        dt = self.c_raw.dtype
        norm = self._psi(torch.maximum(self.threshold.abs(), i.to(dt)))
        x = (self._psi(distance(i, j).to(dt)) / norm)[..., None]
        return self.mlp(x).permute(2, 0, 1)
