"""Output heads on top of `Transformer` hidden states: classification (single, dual) and LM."""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "cls")


def pool(hidden: torch.Tensor, padding_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """(B, N, d) -> (B, d). "mean" averages real positions only; "cls" takes position 0, which is
    the [CLS] vector of a Transformer built with prepend_cls=True."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if padding_mask is None:
        return hidden.mean(dim=1)
    if padding_mask.shape[1] != hidden.shape[1]:  # a [CLS] vector was prepended
        padding_mask = torch.cat([padding_mask.new_zeros(hidden.shape[0], 1), padding_mask], dim=1)
    keep = (~padding_mask).unsqueeze(-1).to(hidden.dtype)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))


class ClassificationHead(nn.Module):
    """Pool, then a one-hidden-layer MLP to class logits (as the LRA classifiers do)."""

    def __init__(self, d_model: int, num_classes: int, pooling: str = "mean", mlp_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"ClassificationHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_classes < 2:
            raise ValueError(f"ClassificationHead: num_classes must be >= 2, got {num_classes}")
        self.pooling = pooling
        self.mlp = _mlp(d_model, mlp_dim or d_model, num_classes, dropout)

    def forward(self, hidden: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(pool(hidden, padding_mask, self.pooling))


class DualClassificationHead(nn.Module):
    """Two pooled encodings u, v -> MLP([u, v, u*v, u-v]) (the LRA retrieval two-tower head)."""

    def __init__(self, d_model: int, num_classes: int, pooling: str = "mean", mlp_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"DualClassificationHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.mlp = _mlp(4 * d_model, mlp_dim or d_model, num_classes, dropout)

    def forward(self, hidden1: torch.Tensor, mask1: torch.Tensor | None, hidden2: torch.Tensor,
                mask2: torch.Tensor | None) -> torch.Tensor:
        u, v = pool(hidden1, mask1, self.pooling), pool(hidden2, mask2, self.pooling)
        return self.mlp(torch.cat([u, v, u * v, u - v], dim=-1))


class LMHead(nn.Module):
    """Hidden states -> next-token logits; optionally tied to the token embedding."""

    def __init__(self, d_model: int, vocab_size: int, tie_to: nn.Embedding | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size, bias=tie_to is None)
        if tie_to is not None:
            self.proj.weight = tie_to.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)
