"""A full disk fails with a clear message, up front when there is too little space, and during a
checkpoint write when the disk fills while training (the previous checkpoint stays loadable).

Uses a real tiny tmpfs, so it needs root and mount permission; elsewhere it is skipped, except in CI (the
simulated ENOSPC unit tests in test_checkpoint_io.py / test_output_dir.py still run)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from .e2e import cli

# with CI=true a skip here (no root, no mount) is a failure: tests/ci_components.py
pytestmark = [pytest.mark.slow, pytest.mark.needs("a tmpfs mount (root) for the full-disk tests")]


@pytest.fixture
def tiny_disk(tmp_path):
    mounted: list[Path] = []

    def make(size_mb: int) -> Path:
        point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(point)], capture_output=True, text=True
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_too_little_space_fails_up_front(tiny_disk, data_dir):
    disk = tiny_disk(2)
    out = cli(["debug=smoke", "logger=csv", f"paths.data_dir={data_dir}", f"hydra.run.dir={disk / 'run'}"])
    assert out.returncode != 0
    assert f"Cannot write to output directory {disk / 'run'}" in out.stderr and "MiB free" in out.stderr
    assert "Traceback" not in out.stderr and "Epoch" not in out.stdout


def test_disk_filling_during_checkpoint_is_a_clear_error(tiny_disk, data_dir):
    disk = tiny_disk(64)  # passes the 50 MiB up-front check; a ~12M-parameter model's checkpoint does not fit
    run_dir = disk / "run"
    out = cli(
        [
            "debug=smoke",
            "logger=csv",
            "model.d_model=512",
            "model.num_heads=8",
            "model.num_layers=4",
            "model.ff_dim=2048",
            "trainer.max_steps=4",
            "ckpt_every_n_steps=2",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert out.returncode != 0
    assert "no space left on the device" in out.stderr and str(run_dir) in out.stderr
    assert "Traceback" not in out.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.exists():  # never a truncated file
        torch.load(last, map_location="cpu", weights_only=False)
    assert not list((run_dir / "checkpoints").glob(".tmp-*")) if (run_dir / "checkpoints").exists() else True
