"""Atomic checkpoints: an interrupted or failed write never damages the previous checkpoint."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from spelab.errors import OutputDirError
from spelab.reliability.checkpoint_io import AtomicCheckpointIO, atomic_torch_save, remove_stale_temp_files

from .rel_helpers import TinyModule, tiny_loader

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_roundtrip_and_no_temp_left(tmp_path):
    obj = {"w": torch.arange(10.0), "step": 3}
    atomic_torch_save(obj, tmp_path / "sub" / "last.ckpt")
    loaded = torch.load(tmp_path / "sub" / "last.ckpt", weights_only=False)
    assert torch.equal(loaded["w"], obj["w"]) and loaded["step"] == 3
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


def test_failure_mid_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)

    def half_then_fail(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


def test_full_disk_is_a_clear_error_and_previous_file_kept(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputDirError) as info:
        atomic_torch_save({"step": 2}, target)
    monkeypatch.undo()
    msg = str(info.value)
    assert str(tmp_path) in msg and "no space left" in msg and "last.ckpt" in msg
    assert torch.load(target, weights_only=False) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


WRITER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {src!r})
    from spelab.reliability.checkpoint_io import atomic_torch_save
    i = 0
    while True:
        i += 1
        atomic_torch_save({{"i": i, "w": torch.full((2_000_000,), float(i))}}, {path!r})
        print(i, flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
def test_kill9_while_writing_never_leaves_a_corrupt_file(tmp_path, trial):
    """SIGKILL a process that rewrites an 8 MB checkpoint in a loop; the file always loads whole."""
    target = tmp_path / "last.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(src=SRC, path=str(target))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    complete = 1 + 2 * trial  # the kill lands while the writer is in the save after this one
    try:
        for i in range(1, complete + 1):
            assert proc.stdout.readline().strip() == str(i)  # checkpoint i is complete
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = torch.load(target, weights_only=False)
    assert ckpt["i"] >= complete and torch.equal(ckpt["w"], torch.full((2_000_000,), float(ckpt["i"])))
    remove_stale_temp_files(tmp_path)
    assert "last.ckpt" in [p.name for p in tmp_path.iterdir()]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_lightning_plugin_writes_loadable_resumable_checkpoints(tmp_path, trainer_kwargs):
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True, every_n_train_steps=2)
    trainer = pl.Trainer(max_steps=6, callbacks=[ckpt], plugins=[AtomicCheckpointIO()], **trainer_kwargs)
    trainer.fit(TinyModule(), tiny_loader())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.ckpt",
        "last.ckpt.prev",
        "last.ckpt.prev.sha256",
        "last.ckpt.sha256",
    ]
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert state["global_step"] == 6
    resumed = pl.Trainer(max_steps=8, plugins=[AtomicCheckpointIO()], **trainer_kwargs)
    resumed.fit(TinyModule(), tiny_loader(), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.global_step == 8
