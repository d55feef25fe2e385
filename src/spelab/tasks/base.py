"""What every spelab LightningModule shares: the backbone, the optimizer/schedule settings and the
parameter count. Subclasses (classification, language model) add heads, losses and metrics."""

from __future__ import annotations

from typing import Iterable

import lightning.pytorch as pl
from torch import nn

from spelab.tasks.optim import build_optimizer


class SequenceTask(pl.LightningModule):
    """A LightningModule around an `nn` backbone (e.g. spelab.nn.Transformer).

    Args:
        model: the backbone, (B, N) ids -> (B, N, d_model).
        lr, weight_decay, betas, eps: AdamW settings.
        weight_decay_all: decay every parameter (LRA's flax Adam, the paper) instead of matrices only.
        warmup_steps, schedule, min_lr_ratio: learning-rate schedule (spelab.tasks.optim); its length
            is the trainer's `estimated_stepping_batches` (max_steps, or epochs x batches).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        schedule: str = "constant",
        min_lr_ratio: float = 0.0,
        betas: Iterable[float] = (0.9, 0.98),
        eps: float = 1e-9,
        weight_decay_all: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim_args = {
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup_steps": warmup_steps,
            "schedule": schedule,
            "min_lr_ratio": min_lr_ratio,
            "betas": tuple(betas),
            "eps": eps,
            "decay_all": bool(weight_decay_all),
        }

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def configure_optimizers(self) -> dict:
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1
        total = int(total) if total != float("inf") else 1
        return build_optimizer(self, total_steps=total, **self.optim_args)
