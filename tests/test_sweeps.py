"""Sweeps that behave: the versioned grids expand to the paper's cells, the launcher configs carry the
right defaults, a failing cell does not stop the others (and the report shows it), a finished sweep
re-run trains nothing, and a cell killed mid-run resumes from its last.ckpt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _cells(sweep: str) -> list[dict[str, str]]:
    """The jobs Hydra's basic sweeper makes of conf/sweep/<sweep>.yaml's hydra.sweeper.params."""
    cfg = _compose([f"+sweep={sweep}"])
    assert cfg.hydra.mode is not None and str(cfg.hydra.mode).endswith("MULTIRUN")
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    (jobs,) = BasicSweeper.split_arguments(parsed, None)
    return [dict(o.split("=", 1) for o in job) for job in jobs]


def _options(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


@pytest.mark.parametrize(
    "sweep, axes, name",
    [
        (
            "lra_grid",
            {
                "experiment": [f"lra/{t}" for t in ("listops", "text", "retrieval", "image", "pathfinder")],
                "attention": ["softmax", "performer", "linear"],
                "pos_enc": ["none", "sinusoidal", "learned", "sinespe", "convspe"],
                "seed": ["0", "1", "2"],
            },
            "lra_grid_v1",
        ),
        (
            "music_grid",
            {
                "experiment": [
                    f"music/{t}_{p}" for t in ("pop_piano", "groove") for p in ("ape", "sinespe", "convspe")
                ],
                "seed": ["0", "1", "2"],
            },
            "music_grid_v1",
        ),
        (
            "cpu_grid_long",
            {
                "experiment": ["cpu_grid/listops"],
                "attention": ["performer"],
                "pos_enc": ["none", "sinusoidal", "sinespe", "convspe"],
                "seed": ["0", "1", "2"],
            },
            "cpu_grid_long_v1",
        ),
        (
            "smoke",
            {
                "task": ["listops"],
                "attention": ["softmax", "performer", "linear"],
                "pos_enc": ["none", "sinusoidal", "learned", "sinespe", "convspe", "rope"],
                "seed": ["0"],
                "debug": ["smoke"],
            },
            "smoke",
        ),
    ],
)
def test_grids_expand_to_every_cell_once(sweep, axes, name):
    cells = _cells(sweep)
    expected = 1
    for values in axes.values():
        expected *= len(values)
    assert len(cells) == expected  # lra_grid: 5 x 3 x 5 x 3 = 225
    keys = tuple(axes)
    assert len({tuple(c[k] for k in keys) for c in cells}) == expected
    for key, values in axes.items():
        assert sorted({c[key] for c in cells}) == sorted(values), key
    for group in ("task", "attention", "pos_enc", "debug"):
        missing = {c[group] for c in cells if group in c} - _options(group)
        assert not missing, f"{sweep}: {group} options without a conf/{group}/*.yaml: {missing}"
    assert _compose([f"+sweep={sweep}"]).sweep_name == name


@pytest.mark.parametrize("sweep", ["lra_grid", "music_grid"])
def test_grid_experiments_select_their_own_task(sweep):
    """The paper grids sweep experiment files; each must pick its task, whatever the default task is."""
    for experiment in sorted({c["experiment"] for c in _cells(sweep)}):
        cfg = _compose([f"experiment={experiment}"])
        name = experiment.split("/")[1]  # lra/<task>, music/<task>_<ape|sinespe|convspe>
        expected = name.rsplit("_", 1)[0] if sweep == "music_grid" else name
        assert cfg.task.name == expected, (experiment, cfg.task.name)


def test_slurm_launchers_have_cluster_defaults(monkeypatch):
    monkeypatch.setenv("SLURM_PARTITION", "gpu_queue")
    monkeypatch.delenv("SLURM_ACCOUNT", raising=False)
    slurm = OmegaConf.to_container(_compose(["hydra/launcher=slurm"]).hydra.launcher, resolve=True)
    assert slurm["_target_"].endswith("SlurmLauncher")
    assert slurm["gpus_per_node"] == 1 and slurm["tasks_per_node"] == 1
    assert slurm["max_num_timeout"] > 0 and slurm["signal_delay_s"] > 0  # submitit requeues
    assert slurm["partition"] == "gpu_queue" and slurm["account"] is None
    assert slurm["array_parallelism"] >= 1 and isinstance(slurm["setup"], list)

    ddp = OmegaConf.to_container(_compose(["hydra/launcher=slurm_ddp"]).hydra.launcher, resolve=True)
    assert ddp["gpus_per_node"] > 1 and ddp["tasks_per_node"] == ddp["gpus_per_node"]  # one rank per GPU
    assert ddp["cpus_per_task"] is None and ddp["cpus_per_gpu"] >= 1
    assert ddp["max_num_timeout"] > 0

    cpu = OmegaConf.to_container(_compose(["hydra/launcher=slurm_cpu"]).hydra.launcher, resolve=True)
    assert cpu["gpus_per_node"] is None and cpu["mem_gb"] is None and cpu["cpus_per_task"] == 1

    local = _compose(["hydra/launcher=local"]).hydra.launcher
    assert local._target_.endswith("BasicLauncher")


# ------------------------------------------------------------------------------------- end to end
def _env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="offline",
    )


def _sweep(sweep_dir: Path, *overrides: str, **kw) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "+sweep=smoke",
        "logger=csv",
        "callbacks.progress_bar=null",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    if kw.pop("background", False):
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


def _results(sweep_dir: Path) -> dict[str, dict]:
    return {r["pos_enc"]: r for r in (json.loads(p.read_text()) for p in sweep_dir.rglob("results.json"))}


@pytest.mark.slow
def test_failing_cell_does_not_stop_the_sweep_and_a_rerun_trains_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # num_heads=16 with d_model=16 gives head_dim 1: fine for none/sinespe, impossible for rope (pairs)
    cells = ["attention=softmax", "pos_enc=none,rope,sinespe", "model.num_heads=16"]
    first = _sweep(sweep_dir, *cells)
    res = _results(sweep_dir)
    assert set(res) == {"none", "rope", "sinespe"}, first.stdout[-2000:] + first.stderr[-2000:]
    assert res["none"]["status"] == res["sinespe"]["status"] == "done"
    assert res["rope"]["status"] == "failed" and "model.num_heads" in res["rope"]["error"]
    assert first.returncode != 0  # Hydra reports the failed cell once every cell has run

    rep = subprocess.run(
        [sys.executable, "-m", "spelab.report", str(sweep_dir)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stderr
    assert "—, 1 failed" in rep.stdout and "Failed runs" in rep.stdout and "model.num_heads" in rep.stdout
    assert "Runs: 3, finished: 2, failed: 1." in rep.stdout
    assert (sweep_dir / "summary.csv").is_file() and (sweep_dir / "bars_listops.png").is_file()

    done = {p: Path(r["output_dir"]) for p, r in res.items() if r["status"] == "done"}
    before = {
        p: ((d / "results.json").read_bytes(), (d / "checkpoints" / "last.ckpt").stat().st_mtime_ns)
        for p, d in done.items()
    }
    second = _sweep(sweep_dir, *cells)
    out = second.stdout + second.stderr
    assert out.count("already done, skipping") == 2, out[-3000:]
    after = {
        p: ((d / "results.json").read_bytes(), (d / "checkpoints" / "last.ckpt").stat().st_mtime_ns)
        for p, d in done.items()
    }
    assert after == before  # nothing retrained, nothing rewritten
    assert _results(sweep_dir)["rope"]["status"] == "failed"  # the failed cell was tried again


@pytest.mark.slow
def test_cell_killed_mid_run_resumes_from_last_ckpt(tmp_path):
    sweep_dir = tmp_path / "sweep"
    steps = 300
    cell = [
        "attention=linear",
        "pos_enc=none",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=100",
        "ckpt_every_n_steps=10",
    ]
    proc = _sweep(sweep_dir, *cell, background=True)
    try:
        # synchronised on the event: last.ckpt is written atomically (temp file, rename), so once it
        # exists it is whole; the deadline only turns a hung run into a failure
        deadline = time.monotonic() + 600
        while not list(sweep_dir.glob("listops/*/*/checkpoints/last.ckpt")):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "hung: no last.ckpt after 600 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash or a node failure: no clean-up of any kind
        proc.wait(timeout=30)
    assert not list(sweep_dir.rglob("results.json")), "the run finished before it was killed"

    again = _sweep(sweep_dir, *cell)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    (res,) = _results(sweep_dir).values()
    last = Path(res["output_dir"]) / "checkpoints" / "last.ckpt"
    assert f"resuming from {last}" in out, out[-3000:]
    assert res["status"] == "done" and res["metrics"]["global_step"] == steps
