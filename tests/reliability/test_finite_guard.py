"""FiniteLossGuard: a NaN/inf loss stops the run naming the step; the last good checkpoint is kept."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from .rel_helpers import TinyModule, tiny_loader
from spelab.errors import NonFiniteLossError
from spelab.reliability import AtomicCheckpointIO, FiniteLossGuard


def _fit(tmp_path, module, trainer_kwargs, every=1):
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True, every_n_train_steps=every)
    trainer = pl.Trainer(
        max_steps=10, callbacks=[FiniteLossGuard(), ckpt], plugins=[AtomicCheckpointIO()], **trainer_kwargs
    )
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(module, tiny_loader())
    return trainer, info.value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_loss_stops_at_that_step_and_keeps_last_good_checkpoint(tmp_path, trainer_kwargs, bad):
    module = TinyModule(poison_at=5, poison_value=bad)
    trainer, err = _fit(tmp_path, module, trainer_kwargs)
    assert err.step == 5 and "step 5" in str(err)
    assert math.isnan(err.value) if math.isnan(bad) else err.value == bad
    # the bad batch never updated the weights, so nothing after step 5 exists
    assert trainer.global_step == 5
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == 5
    for name, value in last["state_dict"].items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, module.state_dict()[name])  # in-memory weights == last good checkpoint


def test_nonfinite_parameters_are_never_checkpointed(tmp_path, trainer_kwargs):
    # the loss stays finite but a parameter turns NaN at step 3: the save after that step is refused
    module = TinyModule(corrupt_param_at=3)
    trainer, err = _fit(tmp_path, module, trainer_kwargs)
    assert err.step == 4 and "'spare'" in str(err)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_finite_run_is_untouched_even_with_infinite_buffers(tmp_path, trainer_kwargs):
    module = TinyModule()
    module.register_buffer("best_so_far", torch.tensor(-float("inf")))  # like torchmetrics' MaxMetric
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True, every_n_train_steps=2)
    trainer = pl.Trainer(max_steps=6, callbacks=[FiniteLossGuard(), ckpt], **trainer_kwargs)
    trainer.fit(module, tiny_loader())
    assert trainer.global_step == 6
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 6
