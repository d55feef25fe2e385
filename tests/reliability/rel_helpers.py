"""Helpers for the reliability tests: a tiny LightningModule whose failures we control."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyModule(pl.LightningModule):
    """Linear regression; `poison_at` makes the loss NaN (or inf) at that global step, `corrupt_param_at`
    sets an unused parameter to NaN (the loss stays finite) at that step."""

    def __init__(self, poison_at: int | None = None, poison_value: float = float("nan"),
                 corrupt_param_at: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.spare = torch.nn.Parameter(torch.zeros(3))
        self.poison_at, self.poison_value, self.corrupt_param_at = poison_at, poison_value, corrupt_param_at

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y) + 0.0 * self.spare.sum()
        if self.poison_at is not None and self.global_step == self.poison_at:
            loss = loss * self.poison_value
        if self.corrupt_param_at is not None and self.global_step == self.corrupt_param_at:
            with torch.no_grad():
                self.spare.fill_(float("nan"))
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def tiny_loader(n: int = 64, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)
