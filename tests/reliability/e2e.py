"""Helpers for the end-to-end reliability tests: run `python run.py ...` as a user would."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a smoke run long enough to cross an epoch (64 examples / batch 4 = 16 batches) with frequent checkpoints
LONG_SMOKE = ["debug=smoke", "logger=csv", "trainer.max_steps=24", "ckpt_every_n_steps=3"]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


def cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def csv_files(run_dir: Path) -> list[Path]:
    """The run's CSV metrics files: one (csv/metrics.csv) or one per attempt (csv/version_<n>/metrics.csv),
    oldest attempt first."""
    files = list((run_dir / "csv").rglob("metrics.csv"))
    return sorted(
        files,
        key=lambda p: (len(p.parts), int(p.parent.name.split("_")[-1]) if p.parent.name.startswith("version_") else -1),
    )


def csv_rows(run_dir: Path) -> list[dict]:
    rows = []
    for path in csv_files(run_dir):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def train_steps(run_dir: Path) -> list[int]:
    """The training steps the logs show, a later attempt's row replacing an earlier one of the same step;
    each attempt must log a contiguous range of steps (no holes)."""
    final: dict[int, dict] = {}
    for path in csv_files(run_dir):
        with open(path, newline="") as f:
            steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
        assert steps == list(range(steps[0], steps[0] + len(steps))) if steps else True, (path, steps)
        final.update({s: path for s in steps})
    return sorted(final)
