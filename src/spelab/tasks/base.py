"""What every spelab LightningModule shares: the backbone, the optimizer and scheduler it is given,
and the parameter count. Subclasses (classification, language model) add heads, losses and metrics.

Nothing here knows Hydra: the config builds the whole module (conf/module/*.yaml), passing the
backbone and the optimizer/scheduler as ready objects and partials."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import lightning.pytorch as pl
from torch import nn

from spelab.tasks.optim import param_groups


class SequenceTask(pl.LightningModule):
    """A LightningModule around an `nn` backbone (e.g. spelab.nn.Transformer).

    Args:
        model: the backbone, (B, N) ids -> (B, N, d_model).
        optimizer: params -> torch optimizer (a partial, e.g. of torch.optim.AdamW); None: the module
            only evaluates (configure_optimizers refuses).
        scheduler: (optimizer, total_steps) -> Lightning's `lr_scheduler` dict (a partial of
            spelab.tasks.optim.warmup_schedule), or None for a constant rate. total_steps is the
            trainer's `estimated_stepping_batches` (max_steps, or epochs x batches).
        weight_decay_all: decay every parameter (LRA's flax Adam, the paper) instead of matrices only.
        lr, weight_decay, betas, eps, warmup_steps, schedule, min_lr_ratio: the plain values the two
            partials read in the config (task.module.lr, ...); kept in the checkpoint's hyper-parameters,
            not used here.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., Any] | None = None,
        scheduler: Callable[..., Any] | None = None,
        weight_decay_all: bool = False,
        lr: float | None = None,
        weight_decay: float | None = None,
        betas: Iterable[float] | None = None,
        eps: float | None = None,
        warmup_steps: int | None = None,
        schedule: str | None = None,
        min_lr_ratio: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.decay_all = bool(weight_decay_all)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def configure_optimizers(self) -> dict:
        if self.optimizer_factory is None:
            raise ValueError(f"{type(self).__name__}: no optimizer given (task.module.optimizer)")
        optimizer = self.optimizer_factory(param_groups(self, decay_all=self.decay_all))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1
        total = int(total) if total != float("inf") else 1
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer, total_steps=total)}
