"""Base of the logit-bias schemes (ALiBi, KERPLE, FIRE, decay): q and k pass through unchanged and the
attention adds ``bias(h, i, j)`` to its logits.

A scheme is a relative scheme (``is_relative = True``) whose ``attention_bias(gate)`` gives the object the
attention backend receives as ``bias=``: it computes ``bias_at(h, i, j)`` elementwise on broadcasting
index tensors, so one formula serves the dense CPU path (an (H, Nq, Nk) float mask) and FlexAttention's
``score_mod`` on CUDA. ``backends`` names the attention options that take the scheme (validation reads it).
"""

from __future__ import annotations

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int, check_qk


class BiasScheme(nn.Module):
    is_relative = True
    backends: tuple[str, ...] | None = ("softmax",)  # attention options that take it (None: all)
    flex_ok = True  # bias_at is a plain elementwise formula (FlexAttention can trace it)

    def __init__(self, num_heads: int, head_dim: int) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, num_heads=num_heads, head_dim=head_dim)
        self.num_heads, self.head_dim = num_heads, head_dim

    @property
    def key_dim(self) -> int:
        """The width attention sees per head: a bias leaves q and k as they are (head_dim)."""
        return self.head_dim

    def draw(self, length: int, device: torch.device | None = None) -> None:
        check_positive_int(f"{type(self).__name__}.draw", length=length)
        return None

    def make_gate(self) -> nn.Module | None:
        return None

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, code: object = None, offset: int = 0, gate: object = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_qk(type(self).__name__, q, k, self.num_heads, self.head_dim)
        check_offset(type(self).__name__, offset)
        return q, k

    def attention_bias(self, gate: nn.Module | None = None) -> "BiasScheme":
        """The bias this layer's attention adds: the scheme itself, or the layer's own copy (`gate`)."""
        return self if gate is None else gate

    def log_decay(self) -> torch.Tensor | None:
        """Per-head log gamma (H,) for a decay the linear backends can apply as a state decay; else None."""
        return None

    def bias_at(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Logit bias for head h, query position i, key position j (integer tensors that broadcast)."""
        raise NotImplementedError

    def dense(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """(H, Nq, Nk) bias for the given query and key positions (the attention casts it to its dtype)."""
        h = torch.arange(self.num_heads, device=q_pos.device)
        return self.bias_at(h[:, None, None], q_pos[None, :, None], k_pos[None, None, :])

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}"


def distance(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """|i - j| as float (causal attention only sees j <= i, where it equals i - j)."""
    return (i - j).abs().float()
