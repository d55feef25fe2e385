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

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from spelab.tracking import register_resolvers  # noqa: E402

register_resolvers()

ATTENTIONS = ("softmax", "performer", "linear")
POS_ENCS = ("none", "sinusoidal", "learned", "sinespe", "convspe", "rope")


def compose_config(overrides: list[str] | None = None, output_dir: Path | None = None,
                   data_dir: Path | None = None) -> DictConfig:
    """The config `python run.py <overrides>` would see, with HydraConfig set so ${hydra:...} resolves.

    output_dir replaces the run dir Hydra would have created; data_dir the data cache root."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=list(overrides or []), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in run.py, where Hydra hands the job its config without the hydra node
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    return cfg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache per test session, so generated ListOps is made once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path: Path, data_dir: Path) -> Callable[..., DictConfig]:
    """make_cfg(overrides, run_dir=None) -> composed config writing into tmp_path/run (or run_dir)."""

    def _make(overrides: list[str] | None = None, run_dir: Path | None = None) -> DictConfig:
        return compose_config(overrides, output_dir=run_dir or tmp_path / "run", data_dir=data_dir)

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `python run.py` subprocesses: offline, src importable, one thread."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    return env
