"""GracefulStop in-process: a real signal to this process mid-step -> last.ckpt at that step, then
RunInterrupted; handlers restored afterwards; error texts are never empty."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
import pytest
import torch

from spelab.reliability.signals import GracefulStop, RunInterrupted, describe_error, is_interruption

from .rel_helpers import TinyModule, tiny_loader


class SignalAt(pl.Callback):
    def __init__(self, step: int, sig: int) -> None:
        self.step, self.sig = step, sig

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:  # arrives while the step runs
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_step_saves_that_step_and_stops(tmp_path, trainer_kwargs, sig):
    last = tmp_path / "checkpoints" / "last.ckpt"
    stop = GracefulStop(last, tmp_path)
    before = signal.getsignal(sig)
    trainer = pl.Trainer(max_steps=50, callbacks=[SignalAt(4, sig), stop], **trainer_kwargs)
    with pytest.raises(RunInterrupted) as info:
        trainer.fit(TinyModule(), tiny_loader())
    assert info.value.step == 5 and signal.Signals(sig).name in str(info.value)
    assert torch.load(last, weights_only=False)["global_step"] == 5  # the step that was running
    assert signal.getsignal(sig) == before


def test_error_texts_are_never_empty():
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    assert describe_error(SIGTERMException()).startswith("SIGTERMException: received SIGTERM")
    assert describe_error(ValueError("")) == "ValueError: no message"
    assert describe_error(ValueError("x")) == "ValueError: x"
    assert is_interruption(SIGTERMException()) and not is_interruption(ValueError())
