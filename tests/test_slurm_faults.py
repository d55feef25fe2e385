"""Faults on the real one-node SLURM cluster (scripts/slurm/start.sh), few jobs each:

* a launcher that does not fit the cluster (GPUs on a CPU partition, an unknown partition) fails in one
  line naming the key to change, before anything is submitted;
* a grid larger than MaxArraySize (lowered for this test by env, never by reconfiguring the cluster)
  goes out as several arrays and every cell runs;
* a cell preempted twice (`scontrol requeue`: SIGTERM, then SLURM requeues it) records `interrupted`
  each time, resumes each time, and ends with the same metrics and weights as an uninterrupted run.
Synchronised on files (pause markers, results.json), not on clocks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from spelab.slurm_precheck import MAX_ARRAY_ENV
from test_slurm import LAUNCHER, ROOT, _env, _job_ids, _results, slurm  # noqa: F401  (slurm: fixture)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

RUN = [str(ROOT / "run.py"), "-m"]


def _popen(args: list[str], log: Path | None = None, **env: str) -> subprocess.Popen:
    """run.py -m; output to a pipe, or to `log` for a process whose output nobody reads while it runs."""
    import sys

    out = open(log, "w") if log is not None else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, *RUN, *args], cwd=ROOT, env={**_env(), **env}, stdout=out, stderr=subprocess.STDOUT, text=True
    )


def test_launcher_mismatch_fails_in_one_line_before_submitting(slurm, tmp_path):
    cases = {
        "gpu": (
            ["hydra/launcher=slurm"],
            "hydra.launcher.gpus_per_node=1 asks for GPUs but partition",
            "use hydra/launcher=slurm_cpu",
        ),
        "partition": (
            [*LAUNCHER, "hydra.launcher.partition=no_such_part"],
            "hydra.launcher.partition='no_such_part': no such partition",
            "it has: ",
        ),
    }
    procs = {
        k: _popen(["+sweep=smoke", "attention=softmax", "pos_enc=none", f"hydra.sweep.dir={tmp_path / k}", *args])
        for k, (args, *_) in cases.items()
    }
    for key, (_, what, fix) in cases.items():
        out, _ = procs[key].communicate(timeout=300)
        assert procs[key].returncode == 1, out[-3000:]
        errors = [ln for ln in out.splitlines() if ln.startswith("Error: ")]
        assert len(errors) == 1 and what in errors[0] and fix in errors[0], out[-3000:]
        assert "Traceback" not in out and "sbatch: error" not in out
        assert not (tmp_path / key / ".submitit").exists(), "something was submitted"


def test_grid_larger_than_max_array_size_is_split_into_arrays(slurm, tmp_path):
    """2 cells, MaxArraySize 1: two arrays of one job (both fit the 2-CPU cluster at once). dry_run cells: the
    job only composes the config and prints its run dir."""
    sweep = tmp_path / "sweep"
    proc = _popen(
        [
            "+sweep=smoke",
            "attention=softmax,linear",
            "pos_enc=none",
            "dry_run=true",
            f"hydra.sweep.dir={sweep}",
            *LAUNCHER,
        ],
        **{MAX_ARRAY_ENV: "1"},
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "2 cells exceed the cluster's MaxArraySize (1): submitting 2 arrays" in out
    jobs = _job_ids(sweep)
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs}) == 2, jobs
    logs = "\n".join(p.read_text(errors="replace") for p in (sweep / ".submitit").rglob("*_log.out"))
    ran = {ln.split("listops/")[1].split("/")[0] for ln in logs.splitlines() if ln.startswith("run dir:")}
    assert ran == {"softmax-none", "linear-none"}, logs[-3000:]


def _wait(predicate, proc, what: str, timeout: float = 400.0):
    """Poll `predicate` until it returns something truthy; fail if `proc` ends first (timeout: hangs only)."""
    end = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before {what}:\n{proc.log.read_text()[-3000:]}")
        assert time.monotonic() < end, f"no {what} after {timeout}s"
        time.sleep(0.2)


def _interrupted_at(run_dir: Path, step: int):
    try:
        res = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("status") == "interrupted" and f"at step {step};" in (res.get("error") or "") else None


def test_cell_preempted_twice_resumes_to_the_uninterrupted_result(slurm, tmp_path):
    cell = [
        "+sweep=smoke",
        "attention=softmax",
        "pos_enc=none",
        "logger=csv",
        "trainer.max_steps=24",
        "ckpt_every_n_steps=3",
        "test_ckpt=last",
    ]
    ref = _popen([*cell, f"hydra.sweep.dir={tmp_path / 'ref'}"], log=tmp_path / "ref.log")  # here, uninterrupted
    sweep = tmp_path / "sweep"
    driver = _popen(
        [*cell, "pause_at_steps=[8,16]", f"hydra.sweep.dir={sweep}", *LAUNCHER], log=tmp_path / "driver.log"
    )
    driver.log = tmp_path / "driver.log"
    try:
        for step in (8, 16):
            marker = _wait(
                lambda: next(sweep.glob(f"listops/*/*/PAUSED_AT_STEP_{step}"), None), driver, f"pause at step {step}"
            )
            run_dir = marker.parent
            (job,) = _job_ids(sweep)
            subprocess.run(["scontrol", "requeue", job], check=True)  # SIGTERM now, then run it again
            res = _wait(lambda: _interrupted_at(run_dir, step), driver, f"results.json interrupted at {step}")
            assert res["error"].startswith("RunInterrupted: interrupted by SIGTERM"), res
        driver.wait(timeout=400)
        out = driver.log.read_text()
    finally:  # never leave a job behind (a requeued one would sit in its pause)
        if driver.poll() is None:
            driver.kill()
        subprocess.run(["scancel", *_job_ids(sweep)], capture_output=True)
    assert driver.returncode == 0, out[-3000:]
    assert ref.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    (got,) = _results(sweep).values()
    (want,) = _results(tmp_path / "ref").values()
    assert got["status"] == "done" and got["error"] is None
    for key in ("test/acc", "test/loss", "val/acc_best", "global_step"):
        assert got["metrics"][key] == want["metrics"][key], key
    log_text = "\n".join(p.read_text(errors="replace") for p in (sweep / ".submitit").rglob("*_log.out"))
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in log_text, log_text[-3000:]
    assert len((run_dir / "run_meta.jsonl").read_text().splitlines()) == 3  # one line per start: 3 attempts
    ref_dir = next((tmp_path / "ref").glob("listops/*/*/checkpoints")).parent
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(ref_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)
