"""Every config composes: each task, each attention x pos_enc cell (and its model builds), each
experiment and sweep file found on disk; run dirs are deterministic per configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra.utils
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from cfg_utils import ATTENTIONS, CONF, MODERN_ATTENTIONS, MODERN_POS_ENCS, POS_ENCS, ROOT, compose_config

TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(
    str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml")
)
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml")) if (CONF / "sweep").is_dir() else []


def _check_group_files_exist() -> None:
    assert {p.stem for p in (CONF / "attention").glob("*.yaml")} == {*ATTENTIONS, *MODERN_ATTENTIONS}
    assert {p.stem for p in (CONF / "pos_enc").glob("*.yaml")} == {*POS_ENCS, *MODERN_POS_ENCS}


def test_groups_hold_exactly_the_contract_options() -> None:
    _check_group_files_exist()
    assert "listops" in TASKS


def test_default_config_is_the_main_job() -> None:
    cfg = compose_config()
    assert cfg.task.name == "listops" and cfg.task.datamodule.source == "generated"
    assert cfg.model._target_ == "spelab.nn.Transformer"
    assert cfg.model.attention._target_ == "spelab.nn.SoftmaxAttention"
    assert cfg.model.pos_enc._target_ == "spelab.nn.NoPositionalEncoding"
    assert cfg.model.max_len == cfg.task.datamodule.max_length
    assert set(cfg.logger) == {"csv", "wandb"} and cfg.logger.wandb.offline is True
    assert cfg.seed == 0 and cfg.force is False


@pytest.mark.parametrize("task", TASKS)
def test_every_task_composes(task: str) -> None:
    cfg = compose_config([f"task={task}"])
    OmegaConf.resolve(cfg)
    t = cfg.task
    assert t.name == task and t.family in ("lra", "music") and t.kind in ("classification", "lm")
    assert t.mode in ("min", "max") and "/" in t.monitor
    assert "_target_" in t.datamodule and "lr" in t.module
    assert cfg.model.max_len >= t.datamodule.max_length


@pytest.mark.parametrize("task", TASKS)
def test_every_task_composes_with_smoke(task: str) -> None:
    cfg = compose_config([f"task={task}", "debug=smoke"])
    OmegaConf.resolve(cfg)
    assert cfg.trainer.max_steps <= 10 and cfg.model.num_layers == 1


@pytest.mark.parametrize("pos_enc", POS_ENCS)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_cell_composes_and_builds(attention: str, pos_enc: str) -> None:
    cfg = compose_config([f"attention={attention}", f"pos_enc={pos_enc}", "debug=smoke"])
    assert cfg.model.attention._partial_ and cfg.model.pos_enc._partial_
    model = hydra.utils.instantiate(cfg.model, vocab_size=17, causal=False)
    ids = torch.randint(1, 17, (2, 12))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 8:] = True
    out = model(ids, mask)
    assert out.shape == (2, 12, cfg.model.d_model) and torch.isfinite(out).all()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment: str) -> None:
    cfg = compose_config([f"experiment={experiment}"])
    OmegaConf.resolve(cfg)
    assert cfg.trainer.max_steps != 0


def test_listops_experiment_is_the_official_setting() -> None:
    cfg = compose_config(["experiment=lra/listops"])
    g = cfg.task.datamodule.generator
    assert (g.num_train, g.num_val, g.num_test, g.min_length, g.max_length) == (96000, 2000, 2000, 500, 2000)
    assert cfg.task.datamodule.max_length == 2000 and cfg.model.max_len == 2000


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_composes(sweep: str) -> None:
    cfg = compose_config([f"+sweep={sweep}"])
    assert cfg.sweep_name and cfg.sweep_name != "adhoc"


def test_unknown_option_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["attention=foo"])
    msg = str(err.value)
    assert "attention" in msg and "foo" in msg
    for name in ATTENTIONS:
        assert name in msg


def _run_dir(tmp_path: Path, *overrides: str) -> str:
    """The run dir `python run.py <overrides>` uses (Hydra's own resolution, in a subprocess)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *overrides, "dry_run=true", f"paths.root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("run dir: ")][-1]
    return line.removeprefix("run dir: ")


@pytest.mark.slow
def test_run_dirs_are_deterministic_per_configuration(tmp_path: Path) -> None:
    base = _run_dir(tmp_path, "attention=linear", "pos_enc=sinespe", "seed=3")
    assert base == f"{tmp_path}/logs/runs/listops/linear-sinespe/seed3"
    a = _run_dir(tmp_path, "attention=linear", "debug=smoke", "model.d_model=32", "pos_enc=sinespe", "seed=3")
    b = _run_dir(tmp_path, "model.d_model=32", "seed=3", "pos_enc=sinespe", "debug=smoke", "attention=linear")
    c = _run_dir(tmp_path, "attention=linear", "debug=smoke", "model.d_model=16", "pos_enc=sinespe", "seed=3")
    assert a == b != c and a.startswith(base + "-")
    assert _run_dir(tmp_path, "attention=linear", "pos_enc=sinespe", "seed=3", "force=true", "fail_at_step=2") == base
