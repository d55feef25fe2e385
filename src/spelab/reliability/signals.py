"""Preemption and time-limit signals: stop at the end of the current step with `last.ckpt` written.

SLURM sends SIGTERM on preemption, `scontrol requeue` and `scancel`, and SIGUSR1/SIGUSR2 (the job's
`--signal`) before a time limit. `GracefulStop` turns each into: finish the running optimizer step,
save `checkpoints/last.ckpt` exactly where the step-end checkpoint callbacks would (so a resume from it
is bit-identical to an uninterrupted run), then
  * raise `RunInterrupted` (results.json: status "interrupted", naming the signal and the step), or
  * for the signal submitit owns (SIGUSR2 by default) call submitit's own handler after the save: it
    requeues the job and exits, and the requeued job resumes from that checkpoint.
Lightning's own SIGTERM handler is replaced while training runs (it would raise an exception with an
empty message, after the batch, without a checkpoint) and restored afterwards.

`pause_at_steps` (tests only) blocks at the end of those steps, writing `PAUSED_AT_STEP_<N>` in the run
dir, until a signal arrives: tests signal a run at a known step by waiting for that file, not a clock.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Iterable

import lightning.pytorch as pl

from spelab.errors import SpelabError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
PAUSE_MARKER = "PAUSED_AT_STEP_{step}"
MAX_PAUSE_S = 600.0  # a paused run nobody signals goes on after this (a test that forgot it)


class RunInterrupted(SpelabError, RuntimeError):
    """Training stopped on a signal after writing `checkpoint`; rerunning the command resumes it."""

    def __init__(self, signame: str, step: int, checkpoint: str) -> None:
        msg = (
            f"interrupted by {signame} at step {step}; saved {checkpoint}. Rerun the same command "
            f"(or let SLURM requeue the job) to resume from it"
        )
        super().__init__(msg, signame, step, checkpoint)
        self.signame, self.step, self.checkpoint = signame, step, checkpoint


def describe_error(err: BaseException) -> str:
    """`Type: message`, never with an empty message (Lightning's SIGTERMException has none)."""
    text = str(err).strip()
    if not text:
        text = {
            "SIGTERMException": "received SIGTERM (terminated by the scheduler, `kill` or `timeout`)",
            "KeyboardInterrupt": "interrupted (Ctrl-C / SIGINT)",
            "SystemExit": "the process exited",
        }.get(type(err).__name__, "no message")
    return f"{type(err).__name__}: {text}"


def is_interruption(err: BaseException) -> bool:
    """A stop caused from outside (signal, Ctrl-C, submitit's requeue exit), not a failure of the run."""
    return isinstance(err, (RunInterrupted, KeyboardInterrupt, SystemExit)) or type(err).__name__ == "SIGTERMException"


def _submitit_signal() -> int | None:
    """The signal submitit requeues on inside one of its SLURM jobs (env SUBMITIT_PREEMPT_SIGNAL)."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper().removeprefix("SIG"), None)


class GracefulStop(pl.Callback):
    """Trainer callback: on SIGTERM/SIGUSR1/SIGUSR2 save `last_path` at the end of the step and stop."""

    def __init__(
        self, last_path: str | os.PathLike, run_dir: str | os.PathLike, pause_at_steps: Iterable[int] | None = None
    ) -> None:
        self.last_path, self.run_dir = Path(last_path), Path(run_dir)
        self.pause_at_steps = {int(s) for s in (pause_at_steps or [])}
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self.stopped: RunInterrupted | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            print(
                f"[spelab] received {signal.Signals(signum).name}: stopping after this step with "
                f"{self.last_path} saved",
                flush=True,
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            return  # DDP: Lightning's own handler stops all ranks together (no checkpoint on the way)
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: signals cannot be caught here
                return

    def _restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step in self.pause_at_steps and self.received is None and self._previous:
            self._pause(step)
        if self.received is None:
            return
        signum, name = self.received, signal.Signals(self.received).name
        trainer.save_checkpoint(self.last_path)  # the same state the step-end checkpoint callbacks save
        print(f"[spelab] {name}: saved {self.last_path} at step {step}", flush=True)
        self.stopped = RunInterrupted(name, step, str(self.last_path))
        previous = self._previous.get(signum)
        self._restore()
        if signum == _submitit_signal() and callable(previous):
            previous(signum, None)  # submitit: requeue this job, then sys.exit
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            # an exception would become this job's final result for submitit (and Hydra), even when SLURM
            # requeues the job (preemption, `scontrol requeue`): exit without a result, as submitit does
            raise SystemExit(1) from self.stopped
        raise self.stopped

    def _pause(self, step: int) -> None:
        marker = self.run_dir / PAUSE_MARKER.format(step=step)
        marker.write_text(f"{os.getpid()}\n")
        print(f"[spelab] paused at step {step} until a signal arrives ({marker})", flush=True)
        end = time.monotonic() + MAX_PAUSE_S
        try:
            while self.received is None and time.monotonic() < end:
                time.sleep(0.02)
        finally:
            marker.unlink(missing_ok=True)
