"""Exact resumption: crash at any step, resume from last.ckpt -> bitwise the weights of an uninterrupted run."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from .rel_helpers import CrashAt, NoisyModule, SimulatedCrash, shuffled_loader
from spelab.data.resumable import ResumableDataLoader
from spelab.reliability.resume_state import RngStateCallback

MAX_STEPS = 22  # 16 batches per epoch: crosses an epoch boundary


def _run(tmp_path, loader_cls, crash_at=None, resume=False, rng=True, trainer_kwargs=None):
    pl.seed_everything(0)
    module = NoisyModule()
    callbacks = [ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True, every_n_train_steps=3)]
    if rng:
        callbacks.append(RngStateCallback())
    if crash_at is not None:
        callbacks.append(CrashAt(crash_at))
    trainer = pl.Trainer(
        max_steps=MAX_STEPS,
        callbacks=callbacks,
        val_check_interval=5,
        check_val_every_n_epoch=None,
        limit_val_batches=2,
        **trainer_kwargs,
    )
    loader = shuffled_loader(loader_cls)
    trainer.fit(
        module,
        loader,
        val_dataloaders=shuffled_loader(DataLoader),
        ckpt_path=tmp_path / "last.ckpt" if resume else None,
    )
    return module, trainer


def _crash_and_resume(tmp_path, loader_cls, crash_at, trainer_kwargs, rng=True):
    with pytest.raises(SimulatedCrash):
        _run(tmp_path, loader_cls, crash_at=crash_at, rng=rng, trainer_kwargs=trainer_kwargs)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"]
    assert saved == crash_at - crash_at % 3  # the crash lost the steps after the last checkpoint
    return _run(tmp_path, loader_cls, resume=True, rng=rng, trainer_kwargs=trainer_kwargs)


@pytest.mark.parametrize("crash_at", [5, 16, 17])  # mid-epoch, right after the epoch's last batch, just after
def test_resume_is_bitwise_identical(tmp_path, trainer_kwargs, crash_at):
    ref, ref_trainer = _run(tmp_path / "ref", ResumableDataLoader, trainer_kwargs=trainer_kwargs)
    got, trainer = _crash_and_resume(tmp_path / "crash", ResumableDataLoader, crash_at, trainer_kwargs)
    assert trainer.global_step == ref_trainer.global_step == MAX_STEPS
    for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
        assert torch.equal(a, b), name


def test_plain_loader_resume_differs(tmp_path, trainer_kwargs):
    """The control: without the resumable loader and RNG state a mid-epoch resume trains on other data."""
    ref, _ = _run(tmp_path / "ref", DataLoader, rng=False, trainer_kwargs=trainer_kwargs)
    got, _ = _crash_and_resume(tmp_path / "crash", DataLoader, 7, trainer_kwargs, rng=False)
    assert not torch.equal(ref.layer.weight, got.layer.weight)


def test_loader_state_roundtrip_skips_consumed_batches():
    loader = shuffled_loader(ResumableDataLoader, n=20, batch_size=2)
    it = iter(loader)
    seen = [next(it) for _ in range(3)]
    state = loader.state_dict()
    assert state["consumed"] == 3
    rest_ref = list(it)
    fresh = shuffled_loader(ResumableDataLoader, n=20, batch_size=2, seed=123)  # another seed: state wins
    fresh.load_state_dict(state)
    rest = list(fresh)
    assert len(rest) == 10 - 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rest, rest_ref))
    assert not any(torch.equal(a[0], b[0]) for a in rest for b in seen)
    # the epoch after continues the same generator stream as the uninterrupted loader
    assert all(torch.equal(a[0], b[0]) for a, b in zip(list(fresh), list(loader)))
