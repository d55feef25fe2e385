"""Exact resumption: after a crash and a restart from `last.ckpt`, training continues with the same
batches and the same random numbers as an uninterrupted run, so the final metrics are identical.

Lightning restores weights, optimizer, schedulers and loop counters, but not
  * the position inside the epoch: `spelab.data.resumable.ResumableDataLoader` (built by the
    DataModules) saves and replays it; and
  * the global RNG streams (torch, CUDA, numpy, random) that dropout, SPE code draws and Performer
    feature redraws consume: `RngStateCallback` stores them in every checkpoint and puts them back
    just before the first training batch after a resume; it also runs validation on a forked RNG so
    that validating (or not) never changes the training stream — which is what makes "validated
    before the crash, not after the resume" invisible.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The global RNG states as tensors and plain Python values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RngStateCallback(pl.Callback):
    """Checkpoint the global RNG states; restore them at the first training batch after a resume.

    Validation during fit runs on a forked RNG (its draws never reach the training stream)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._before_val: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "RngStateCallback"

    def state_dict(self) -> dict[str, Any]:
        # a checkpoint written during validation (best.ckpt) records the training stream, not val's
        return {"rng": self._before_val if self._before_val is not None else capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training or trainer.sanity_checking or trainer.state.fn == "fit":
            self._before_val = capture_rng()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._before_val is not None:
            restore_rng(self._before_val)
            self._before_val = None
