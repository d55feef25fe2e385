"""Training end to end on ListOps with debug=smoke: every grid cell, determinism, resume, skip,
failures, and the real `python run.py` command line (single run and multirun)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cfg_utils import ATTENTIONS, POS_ENCS, ROOT
from spelab.errors import MissingDataError
from spelab.train import train

SMOKE = ["debug=smoke", "logger=csv"]
CELLS = [(a, p) for a in ATTENTIONS for p in POS_ENCS]  # all 18, well under a second each


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _csv_rows(run_dir: Path) -> list[list[dict]]:
    """metrics.csv rows of each attempt (csv/version_<n>), in order."""
    out = []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with open(path) as f:
            out.append(list(csv.DictReader(f)))
    return out


@pytest.mark.parametrize("attention,pos_enc", CELLS)
def test_cell_trains_and_tests(make_cfg, tmp_path: Path, attention: str, pos_enc: str) -> None:
    cfg = make_cfg(SMOKE + [f"attention={attention}", f"pos_enc={pos_enc}"])
    out = train(cfg)
    res = _results(tmp_path / "run")
    assert res == json.loads(json.dumps(out, default=str))
    assert res["status"] == "done" and res["error"] is None
    assert (res["task"], res["attention"], res["pos_enc"], res["seed"]) == ("listops", attention, pos_enc, 0)
    m = res["metrics"]
    assert 0.0 <= m["test/acc"] <= 1.0 and m["test/loss"] > 0 and "val/acc_best" in m
    assert m["global_step"] == cfg.trainer.max_steps
    assert res["params"] > 0 and res["data"]["vocab_size"] == 17 and res["data"]["substitute"] is True
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    # it trained: the optimizer took every step, on gradients that were not all zero
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    states = list(ckpt["optimizer_states"][0]["state"].values())
    assert states and all(int(st["step"]) == cfg.trainer.max_steps for st in states)
    assert any(st["exp_avg"].abs().sum() > 0 for st in states)


def test_same_seed_gives_the_same_metrics(make_cfg, tmp_path: Path) -> None:
    # Performer + SineSPE: random features and random SPE codes are drawn from the seeded RNG too.
    cell = SMOKE + ["attention=performer", "pos_enc=sinespe"]
    a = train(make_cfg(cell, run_dir=tmp_path / "a"))["metrics"]
    b = train(make_cfg(cell, run_dir=tmp_path / "b"))["metrics"]
    c = train(make_cfg(cell + ["seed=1"], run_dir=tmp_path / "c"))["metrics"]
    assert a == b
    assert a["train/loss"] != c["train/loss"]


def test_resume_continues_from_the_last_checkpoint(make_cfg, tmp_path: Path) -> None:
    run = ["trainer.max_steps=6", "ckpt_every_n_steps=2"]
    with pytest.raises(RuntimeError, match="fail_at_step"):
        train(make_cfg(SMOKE + run + ["fail_at_step=3"]))
    res = _results(tmp_path / "run")
    assert res["status"] == "failed" and "fail_at_step" in res["error"]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2

    out = train(make_cfg(SMOKE + run))
    assert out["status"] == "done" and out["metrics"]["global_step"] == 6
    first, second = _csv_rows(tmp_path / "run")
    steps = [int(r["step"]) for r in second if r.get("train/loss")]
    assert len(steps) == 4 and min(steps) == 2  # only the 4 missing steps ran, counting on from step 2
    assert min(int(r["step"]) for r in first if r.get("train/loss")) == 0


def test_finished_run_is_skipped_and_force_reruns(make_cfg, tmp_path: Path, capsys) -> None:
    done = train(make_cfg(SMOKE))
    before = (tmp_path / "run" / "results.json").read_text()
    again = train(make_cfg(SMOKE))
    assert again == json.loads(before) and (tmp_path / "run" / "results.json").read_text() == before
    assert "already done" in capsys.readouterr().out
    attempts = sorted((tmp_path / "run" / "csv").glob("version_*"))
    forced = train(make_cfg(SMOKE + ["force=true"]))
    assert forced["status"] == "done" and forced["metrics"]["global_step"] == done["metrics"]["global_step"]
    # it trained again: one more CSV log (results.json may come out byte-identical: same metrics, and
    # a wall time rounded to the millisecond)
    assert len(sorted((tmp_path / "run" / "csv").glob("version_*"))) == len(attempts) + 1


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.d_model=0", "model.d_model"),
        ("model.num_layers=-1", "model.num_layers"),
        ("task.datamodule.batch_size=0", "batch_size"),
    ],
)
def test_bad_size_fails_at_once_naming_the_key(make_cfg, tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(Exception) as err:
        train(make_cfg(SMOKE + [override]))
    assert key in str(err.value)
    res = _results(tmp_path / "run")
    assert res["status"] == "failed" and key in res["error"] and res["params"] is None


def test_missing_official_data_fails_naming_the_path(make_cfg, tmp_path: Path) -> None:
    missing = tmp_path / "no_lra_release"
    with pytest.raises(MissingDataError) as err:
        train(make_cfg(SMOKE + ["task.datamodule.source=official", f"task.datamodule.data_dir={missing}"]))
    assert str(missing) in str(err.value) and "lra_release.gz" in str(err.value)


def _run(args: list[str], env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_run_py_single_run(tmp_path: Path, subprocess_env: dict, data_dir: Path) -> None:
    args = [
        "debug=smoke",
        "attention=linear",
        "pos_enc=sinespe",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={data_dir}",
    ]
    out = _run(args, subprocess_env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    [res_path] = (tmp_path / "logs" / "runs" / "listops" / "linear-sinespe").glob("seed0-*/results.json")
    res = json.loads(res_path.read_text())
    assert res["status"] == "done" and f"test/acc={res['metrics']['test/acc']:.4f}" in out.stdout
    again = _run(args, subprocess_env, tmp_path)  # the same command: skipped, pointing at the results
    assert again.returncode == 0 and "already done" in again.stdout and str(res_path) in again.stdout


@pytest.mark.slow
def test_run_py_unknown_option_fails_listing_the_options(tmp_path: Path, subprocess_env: dict) -> None:
    out = _run(["pos_enc=sine", f"paths.root_dir={tmp_path}"], subprocess_env, tmp_path, timeout=120)
    assert out.returncode != 0
    assert "pos_enc" in out.stderr and "sinespe" in out.stderr and "convspe" in out.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_run_py_multirun_grid(tmp_path: Path, subprocess_env: dict, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "attention=softmax,performer,linear",
        "pos_enc=none,sinusoidal,learned,sinespe,convspe",
        "debug=smoke",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
        f"paths.data_dir={data_dir}",
    ]
    out = _run(args, subprocess_env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    found = {}
    for path in sweep.glob("listops/*/seed0*/results.json"):
        res = json.loads(path.read_text())
        assert res["status"] == "done" and res["output_dir"] == str(path.parent)
        found[(res["attention"], res["pos_enc"])] = path.parent.parent.name
    expected = {(a, p) for a in ATTENTIONS for p in POS_ENCS if p != "rope"}
    assert set(found) == expected and all(d == f"{a}-{p}" for (a, p), d in found.items())
