"""Helpers for the reliability tests: a tiny LightningModule whose failures we control."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyModule(pl.LightningModule):
    """Linear regression; `poison_at` makes the loss NaN (or inf) at that global step, `corrupt_param_at`
    sets an unused parameter to NaN (the loss stays finite) at that step."""

    def __init__(
        self, poison_at: int | None = None, poison_value: float = float("nan"), corrupt_param_at: int | None = None
    ) -> None:
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


class NoisyModule(TinyModule):
    """TinyModule with dropout and a random draw per step, like SPE codes: uses the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(0.3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        noise = 0.01 * torch.randn_like(x)
        loss = torch.nn.functional.mse_loss(self.layer(self.drop(x + noise)), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        torch.randn(7)  # validation that consumes the global RNG must not shift training's stream
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x), y))


class SimulatedCrash(RuntimeError):
    pass


class CrashAt(pl.Callback):
    """Simulates a crash once `step` optimizer steps are done (after that step's checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            raise SimulatedCrash(f"simulated crash at step {trainer.global_step}")


def shuffled_loader(cls=DataLoader, n: int = 64, batch_size: int = 4, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return cls(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
