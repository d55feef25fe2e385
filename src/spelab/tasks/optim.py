"""Parameter groups for AdamW, and linear warmup + the LRA schedules, stepped once per optimizer step.
The optimizer and the scheduler themselves are partials in the config (task.module.optimizer/scheduler).

Every schedule is a multiplier of `lr` that peaks at 1 at the end of warmup:
- constant: 1 after warmup;
- linear:   linear decay to `min_lr_ratio` at `total_steps`;
- cosine:   half-cosine decay to `min_lr_ratio` at `total_steps`;
- rsqrt:    sqrt(warmup / step) after warmup (LRA's `constant*linear_warmup*rsqrt_decay`, whose peak
            is base/sqrt(warmup): set lr to that peak).
"""

from __future__ import annotations

import math
import torch
from torch import nn

SCHEDULES = ("constant", "linear", "cosine", "rsqrt")


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str, min_lr_ratio: float = 0.0) -> float:
    """The multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"task.module.schedule={schedule!r} is not one of {list(SCHEDULES)}")
    t = step + 1  # the first update already uses a non-zero rate
    if warmup_steps > 0 and t < warmup_steps:
        return t / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "rsqrt":
        return math.sqrt(max(warmup_steps, 1) / max(t, warmup_steps, 1))
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(t - warmup_steps, 0) / span, 1.0)
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(module: nn.Module, weight_decay: float | None = None, decay_all: bool = False) -> list[dict]:
    """Decay matrices only; biases, norms and other 1-D parameters get no weight decay.
    decay_all: decay every parameter, as flax's Adam in the LRA code does (the paper's setting).
    weight_decay None: the decayed group takes the optimizer's own weight_decay."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if decay_all or p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay} if weight_decay is None else {"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "constant",
    min_lr_ratio: float = 0.0,
) -> dict:
    """Linear warmup then `schedule`, stepped once per optimizer step: the `lr_scheduler` entry of
    Lightning's `configure_optimizers` (task.module.scheduler is this function as a partial)."""
    if warmup_steps < 0:
        raise ValueError(f"task.module.warmup_steps must be >= 0, got {warmup_steps}")
    if schedule not in SCHEDULES:
        raise ValueError(f"task.module.schedule={schedule!r} is not one of {list(SCHEDULES)}")
    total = max(int(total_steps), 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total, schedule, min_lr_ratio)
    )
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}
