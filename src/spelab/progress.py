"""Training progress that works everywhere.

On a terminal: Lightning's rich bar, labelled "Epoch N" or "step S/max" rather than "Epoch 0/-2" (what
it shows when training is bounded by steps). Off a terminal (a pipe, `tee`, nohup, a SLURM log) a bar
draws nothing useful, so it is replaced by `PlainProgress`: one plain line every N steps or T seconds.
`SPELAB_PROGRESS=plain|bar` forces either.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichModelSummary, RichProgressBar


def interactive() -> bool:
    forced = os.environ.get("SPELAB_PROGRESS", "").lower()
    if forced in ("plain", "bar"):
        return forced == "bar"
    return sys.stdout.isatty()


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def total_steps(trainer: pl.Trainer) -> int | None:
    """The optimizer steps this fit will run, when known."""
    if trainer.max_steps and trainer.max_steps > 0:
        return int(trainer.max_steps)
    try:
        total = trainer.estimated_stepping_batches
        return int(total) if total != float("inf") else None
    except Exception:  # no train dataloader yet
        return None


class PlainProgress(pl.Callback):
    """One line per `every_n_steps` optimizer steps or `every_s` seconds, whichever comes first:
    `[spelab] step 120/5000 (2%) | loss 1.2345 | 3.40 it/s | ETA 23m55s | best val/acc 0.4120`."""

    def __init__(self, every_n_steps: int = 50, every_s: float = 30.0) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.every_s = float(every_s)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = self._last_t = time.monotonic()
        self._step0 = self._last_step = trainer.global_step
        total = total_steps(trainer)
        where = f"from step {trainer.global_step}" if trainer.global_step else "from step 0"
        self._print(trainer, f"training {where}" + (f" to {total}" if total else ""))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, now = trainer.global_step, time.monotonic()
        if step == self._last_step:
            return  # gradient accumulation: not an optimizer step
        if step - self._last_step >= self.every_n_steps or now - self._last_t >= self.every_s:
            self._report(trainer, outputs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self._report(trainer, None)

    def _report(self, trainer: pl.Trainer, outputs: Any) -> None:
        step, now = trainer.global_step, time.monotonic()
        rate = (step - self._step0) / max(now - self._t0, 1e-9)
        total = total_steps(trainer)
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"]
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        parts.append(f"{rate:.2f} it/s")
        if total and rate > 0 and step < total:
            parts.append(f"ETA {_duration((total - step) / rate)}")
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_score", None)
        if best is not None and getattr(ckpt, "monitor", None):
            parts.append(f"best {ckpt.monitor} {float(best):.4f}")
        self._print(trainer, " | ".join(parts))
        self._last_step, self._last_t = step, now

    @staticmethod
    def _print(trainer: pl.Trainer, line: str) -> None:
        if trainer.is_global_zero:
            print(f"[spelab] {line}", flush=True)


class StepBar(RichProgressBar):
    """The rich bar, labelled "step S/max" when training is bounded by steps (Lightning would print
    "Epoch 0/-2" there), else "Epoch N/M"."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            total = total_steps(trainer)
            text = f"Epoch {current_epoch} · step {trainer.global_step}" + (f"/{total}" if total else "")
        else:
            text = f"Epoch {current_epoch}/{trainer.max_epochs - 1}"
        width = len(self.validation_description)
        return f"{text:{width}}" if width > len(text) else text


class ModelSummary(RichModelSummary):
    """Lightning's rich parameter table without the FLOPs column and "Total FLOPs: 0" (never measured
    here: Lightning counts FLOPs only for a model with an example input array)."""

    @staticmethod
    def summarize(
        summary_data: list,
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict,
        total_flops: int,
        **kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:  # the first column (" ") holds the row numbers
            table.add_column(
                name,
                style="dim" if not name.strip() else None,
                justify="left" if name in (" ", "Name", "Type", "Mode") else "right",
            )
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(
            f"Trainable params: {get_human_readable_count(int(trainable_parameters))}  "
            f"Total params: {get_human_readable_count(int(total_parameters))}  "
            f"Size: {get_formatted_model_size(model_size)} MB"
        )


def setup_progress(callbacks: list[pl.Callback], cfg: Any) -> tuple[list[pl.Callback], dict[str, Any]]:
    """The callbacks with the right progress display for where the output goes, and the Trainer
    arguments that go with them."""
    opts = dict(cfg.get("progress") or {})
    if interactive():
        if not any(isinstance(c, ProgressBar) for c in callbacks):  # Lightning's default would say "0/-2"
            callbacks = callbacks + [StepBar()]
        return callbacks, {}
    callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks + [PlainProgress(**opts)], {"enable_progress_bar": False}
