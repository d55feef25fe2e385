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

    def __init__(
        self, d_model: int, num_classes: int, pooling: str = "mean", mlp_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"ClassificationHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_classes < 2:
            raise ValueError(f"ClassificationHead: num_classes must be >= 2, got {num_classes}")
        self.pooling = pooling
        self.mlp = _mlp(d_model, mlp_dim or d_model, num_classes, dropout)

    def forward(self, hidden: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(pool(hidden, padding_mask, self.pooling))


INTERACTIONS = ("nli", "concat")


class DualClassificationHead(nn.Module):
    """Two pooled encodings u, v -> MLP([u, v, u*v, u-v]) (the LRA retrieval two-tower head).

    interaction: "nli" ([u, v, u*v, u-v], as the LRA paper describes) or "concat" ([u, v], what the
    official LRA code ran: its `interaction` was left unset); layers: 1 hidden layer, or 2 as the
    official classifier_head_dual (widths mlp_dim, mlp_dim // 2).
    """

    def __init__(
        self,
        d_model: int,
        num_classes: int,
        pooling: str = "mean",
        mlp_dim: int | None = None,
        dropout: float = 0.0,
        interaction: str = "nli",
        layers: int = 1,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"DualClassificationHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        if interaction not in INTERACTIONS:
            raise ValueError(f"DualClassificationHead: interaction must be one of {INTERACTIONS}, got {interaction!r}")
        if layers not in (1, 2):
            raise ValueError(f"DualClassificationHead: layers must be 1 or 2, got {layers!r}")
        self.pooling, self.interaction = pooling, interaction
        hidden = mlp_dim or d_model
        d_in = (4 if interaction == "nli" else 2) * d_model
        if layers == 1:
            self.mlp = _mlp(d_in, hidden, num_classes, dropout)
        else:
            self.mlp = nn.Sequential(
                nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), _mlp(hidden, hidden // 2, num_classes, dropout)
            )

    def forward(
        self, hidden1: torch.Tensor, mask1: torch.Tensor | None, hidden2: torch.Tensor, mask2: torch.Tensor | None
    ) -> torch.Tensor:
        u, v = pool(hidden1, mask1, self.pooling), pool(hidden2, mask2, self.pooling)
        parts = [u, v, u * v, u - v] if self.interaction == "nli" else [u, v]
        return self.mlp(torch.cat(parts, dim=-1))


class LMHead(nn.Module):
    """Hidden states -> next-token logits; optionally tied to the token embedding."""

    def __init__(self, d_model: int, vocab_size: int, tie_to: nn.Embedding | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size, bias=tie_to is None)
        if tie_to is not None:
            self.proj.weight = tie_to.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)
