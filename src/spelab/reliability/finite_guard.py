"""Stop training at the first NaN/inf loss, before the bad update, and never checkpoint bad weights.

The loss is checked in `on_before_backward`: the optimizer has not stepped yet, so the weights in
memory and in every checkpoint are still the last good ones. `on_save_checkpoint` also refuses to
write non-finite parameters (buffers are not checked) (weights can go bad through an infinite gradient with a finite loss);
since it runs before the file is written, `last.ckpt` keeps the last good state.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from spelab.errors import NonFiniteLossError


def _first_nonfinite(module: torch.nn.Module) -> str | None:
    """The first parameter that holds a NaN/inf. Buffers are not checked: metric states such as
    MaxMetric's -inf start value are legitimately infinite."""
    for name, value in module.named_parameters():
        if not bool(torch.isfinite(value.detach()).all()):
            return name
    return None


class FiniteLossGuard(pl.Callback):
    """Raise NonFiniteLossError naming the step when the training loss is NaN or infinite.

    `step` in the error is `trainer.global_step` when the bad batch was seen: the number of optimizer
    steps completed, i.e. the step that batch would have produced (also the step Lightning logs it at).

    Args:
        check_params_on_save: also refuse to save a checkpoint whose parameters are not finite.
    """

    def __init__(self, check_params_on_save: bool = True) -> None:
        self.check_params_on_save = check_params_on_save

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self._check(trainer, loss)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # manual optimisation never calls on_before_backward through Lightning's closure
        if not pl_module.automatic_optimization:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if torch.is_tensor(loss):
                self._check(trainer, loss)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not self.check_params_on_save:
            return
        name = _first_nonfinite(pl_module)
        if name is not None:
            raise NonFiniteLossError(
                trainer.global_step,
                math.nan,
                hint=f"Parameter {name!r} is not finite, so this checkpoint was not written; the previous one is kept",
            )

    @staticmethod
    def _check(trainer: pl.Trainer, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            value = float(loss.detach().float().reshape(-1)[0])
            raise NonFiniteLossError(trainer.global_step, value)
