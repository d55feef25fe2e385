"""The disk fills up exactly while a checkpoint or results.json is being written: the previous
checkpoint and results.json stay intact (checksum-valid, parseable), no temp file is left, and the
run ends with an error naming the run dir and the full filesystem.

The run is a real `train(cfg)` on a real tmpfs; the fault is timed by filling that tmpfs to the last
byte just before the write in question (so the ENOSPC comes from the kernel, not from a mock)."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from spelab.errors import OutputDirError
from spelab.reliability import checkpoint_io, ckpt_fallback

from .e2e import LONG_SMOKE
from .test_e2e_full_disk import tiny_disk  # noqa: F401  (fixture: a small real tmpfs)

pytestmark = pytest.mark.slow

PRIOR = {
    "status": "interrupted",
    "task": "listops",
    "attention": "softmax",
    "pos_enc": "none",
    "seed": 0,
    "metrics": {},
    "error": "RunInterrupted: interrupted by SIGTERM at step 2; an earlier attempt",
}


def fill(disk) -> None:
    """Write to `disk` until the kernel says ENOSPC, down to single bytes."""
    with open(disk / "filler", "ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err


def _start(tiny_disk, make_cfg, steps):  # noqa: F811
    disk = tiny_disk(64)  # above the 50 MiB that check_output_dir wants free
    run_dir = disk / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(PRIOR))
    cfg = make_cfg(LONG_SMOKE + [f"trainer.max_steps={steps}", "callbacks.progress_bar=null"], run_dir=run_dir)
    return disk, run_dir, cfg


def _assert_intact(disk, run_dir, step):
    assert json.loads((run_dir / "results.json").read_text()) == PRIOR
    last = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt_fallback.problem(last) is None
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == step
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
    assert not leftovers


def test_disk_full_during_checkpoint_keeps_previous_checkpoint_and_results(
    tiny_disk,
    make_cfg,  # noqa: F811
    monkeypatch,
):
    from spelab.train import train

    disk, run_dir, cfg = _start(tiny_disk, make_cfg, steps=9)
    real_save, saves = checkpoint_io.atomic_torch_save, []

    def save(obj, path):
        if str(path).endswith("last.ckpt"):
            saves.append(path)
            if len(saves) == 2:  # the step-6 checkpoint: the disk is full now
                fill(disk)
        return real_save(obj, path)

    monkeypatch.setattr(checkpoint_io, "atomic_torch_save", save)
    with pytest.raises(OutputDirError) as info:
        train(cfg)
    msg = str(info.value)
    assert "no space left on the device" in msg and str(run_dir / "checkpoints") in msg
    assert f"mounted at {disk}" in msg
    _assert_intact(disk, run_dir, step=3)


def test_disk_full_when_writing_results_fails_the_run_keeping_the_old_file(
    tiny_disk,
    make_cfg,  # noqa: F811
    monkeypatch,
):
    import spelab.train as train_mod

    disk, run_dir, cfg = _start(tiny_disk, make_cfg, steps=3)
    real_write = train_mod.write_results

    def write(output_dir, results):
        fill(disk)
        return real_write(output_dir, results)

    monkeypatch.setattr(train_mod, "write_results", write)
    with pytest.raises(OutputDirError) as info:  # finished training, but the record is not on disk
        train_mod.train(cfg)
    msg = str(info.value)
    assert f"Cannot write to output directory {run_dir}" in msg and "no space left on the device" in msg
    assert f"mounted at {disk}" in msg
    _assert_intact(disk, run_dir, step=3)
