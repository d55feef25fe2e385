"""Shared test fixtures: compose the real configs (conf/) in-process, with outputs in tmp dirs.

Tests never touch the network: W&B runs offline, Hugging Face stays offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Triton picks its interpreter when it is first imported (lightning imports it): without CUDA, the
# Triton kernel tests run interpreted on CPU tensors (tests/kernel_utils.py)
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from cfg_utils import compose_config  # noqa: E402  (tests/ is on pytest's pythonpath)

# CI=true: a skipped test that needs a real component (SLURM, a tmpfs...) fails instead
pytest_plugins = ["ci_components"]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache per test session, so generated ListOps is made once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path: Path, data_dir: Path) -> Callable:
    """make_cfg(overrides, run_dir=None) -> composed config writing into tmp_path/run (or run_dir)."""

    def _make(overrides: list[str] | None = None, run_dir: Path | None = None):
        return compose_config(overrides, output_dir=run_dir or tmp_path / "run", data_dir=data_dir)

    yield _make
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `python run.py` subprocesses: offline, src importable, one thread."""
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env
