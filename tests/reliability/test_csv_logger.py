"""ContinuousCSVLogger: after a crash and a resume, metrics.csv holds every step once, in order."""

from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from spelab.reliability.csv_logger import ContinuousCSVLogger

from .rel_helpers import CrashAt, SimulatedCrash, TinyModule, tiny_loader


def _fit(tmp_path, crash_at=None, resume=False):
    logger = ContinuousCSVLogger(save_dir=tmp_path, name="csv", version="")
    cbs = [ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=0, save_last=True, every_n_train_steps=4)]
    if crash_at:
        cbs.append(CrashAt(crash_at))
    trainer = pl.Trainer(
        max_steps=20,
        callbacks=cbs,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyModule(), tiny_loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt" if resume else None)


def _steps(path):
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_resumed_run_logs_one_continuous_series(tmp_path):
    with pytest.raises(SimulatedCrash):
        _fit(tmp_path, crash_at=10)  # checkpoint at step 8; steps 8 and 9 are logged, then recomputed
    before = _steps(tmp_path / "csv" / "metrics.csv")
    assert before == list(range(9))  # flushed every step: all rows up to the crashing batch are on disk
    _fit(tmp_path, resume=True)
    assert _steps(tmp_path / "csv" / "metrics.csv") == list(range(20))


def test_fresh_run_in_same_dir_starts_a_new_file(tmp_path):
    _fit(tmp_path)
    (tmp_path / "ckpt" / "last.ckpt").unlink()
    _fit(tmp_path)
    assert _steps(tmp_path / "csv" / "metrics.csv") == list(range(20))
