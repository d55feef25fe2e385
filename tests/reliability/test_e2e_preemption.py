"""Preemption and damaged checkpoints, end to end through `python run.py`, with real signals.

One scenario (module fixture), each test checking one promise of it:
  launch 1: paused at step 10 (pause_at_steps), gets SIGUSR1 -> last.ckpt at step 10, status interrupted;
            the test then flips a byte in the middle of last.ckpt (torch.load would not notice);
  launch 2: detects it by its checksum, warns naming it, resumes from the previous one (step 9);
            paused at step 16, gets SIGTERM (what `timeout`, scancel and SLURM preemption send);
            the test then truncates last.ckpt (a copy cut short);
  launch 3: falls back again (step 15) and finishes.
The final metrics and weights must equal an uninterrupted run's bit for bit (CPU, same seed).
The tests synchronise on the pause marker file, never on a clock."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .e2e import LONG_SMOKE, ROOT, cli, cli_env, results, train_steps

pytestmark = pytest.mark.slow

STEPS = 24  # LONG_SMOKE: checkpoints every 3 steps; the pauses are between two of them


def popen_logged(args: list[str], log: Path) -> subprocess.Popen:
    """`python run.py ...` writing to `log`: a paused run whose pipe nobody reads could block on a full one."""
    proc = subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.log = log
    return proc


def wait_for_file(path: Path, proc, timeout: float = 300.0) -> None:
    """Until `path` exists; fails at once if the process ends first (the timeout only stops a hang)."""
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended (rc {proc.returncode}) before {path} existed:\n{proc.log.read_text()[-3000:]}"
            )
        assert time.monotonic() < end, f"no {path} after {timeout}s"
        time.sleep(0.05)


def interrupt_at(args: list[str], run_dir: Path, step: int, sig: int) -> tuple[int, str]:
    proc = popen_logged(args + [f"pause_at_steps=[{step}]"], run_dir.parent / f"launch-{step}.log")
    try:
        wait_for_file(run_dir / f"PAUSED_AT_STEP_{step}", proc)
        proc.send_signal(sig)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, proc.log.read_text()


def ckpt_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("preempt")
    common = [a for a in LONG_SMOKE if not a.startswith("trainer.max_steps=")]
    common += [f"trainer.max_steps={STEPS}", "test_ckpt=last", f"paths.data_dir={data_dir}"]
    ref_dir, run_dir = tmp / "ref", tmp / "run"
    ref = popen_logged(common + [f"hydra.run.dir={ref_dir}"], tmp / "ref.log")  # alongside launch 1
    args = common + [f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    s: dict = {"ref_dir": ref_dir, "run_dir": run_dir}

    s["rc1"], s["out1"] = interrupt_at(args, run_dir, 10, signal.SIGUSR1)
    s["res1"], s["step1"], s["prev1"] = results(run_dir), ckpt_step(last), ckpt_step(Path(f"{last}.prev"))
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a damaged byte inside a tensor: loads fine, wrong weights
    last.write_bytes(bytes(data))

    s["rc2"], s["out2"] = interrupt_at(args, run_dir, 16, signal.SIGTERM)
    s["res2"], s["step2"] = results(run_dir), ckpt_step(last)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # a copy cut short

    third = cli(args)
    s["rc3"], s["out3"] = third.returncode, third.stdout + third.stderr
    s["res3"] = results(run_dir)
    assert ref.wait(timeout=300) == 0, ref.log.read_text()[-3000:]
    s["ref"] = results(ref_dir)
    return s


def test_signal_saves_last_ckpt_and_records_interrupted(scenario):
    s = scenario
    assert s["rc1"] != 0 and s["rc2"] != 0, s["out1"][-2000:]
    assert s["step1"] == 10 and s["prev1"] == 9, "the signal's checkpoint is the step it stopped at"
    assert s["step2"] == 16
    for res, sig, step in ((s["res1"], "SIGUSR1", 10), (s["res2"], "SIGTERM", 16)):
        assert res["status"] == "interrupted", res
        assert res["error"].startswith("RunInterrupted: ") and f"interrupted by {sig} at step {step}" in res["error"]
    assert "Traceback" not in s["out2"]


def test_rerun_after_signal_resumes_and_finishes(scenario):
    s = scenario
    assert s["rc3"] == 0, s["out3"][-3000:]
    assert s["res3"]["status"] == "done" and s["res3"]["error"] is None
    assert s["res3"]["metrics"]["global_step"] == STEPS


def test_damaged_last_ckpt_falls_back_to_previous_with_a_warning(scenario):
    s = scenario
    last = s["run_dir"] / "checkpoints" / "last.ckpt"
    assert f"WARNING: {last} is damaged (checksum mismatch" in s["out2"]
    assert f"resuming from the previous checkpoint {last}.prev" in s["out2"]
    assert f"WARNING: {last} is damaged (checksum mismatch" in s["out3"]  # truncated: also a mismatch
    assert (last.parent / "last.ckpt.corrupt").exists(), "the damaged file is kept aside"
    assert "resuming from" in s["out3"] and f"{last}.prev" in s["out3"]


def test_resumed_run_matches_uninterrupted_run_bitwise(scenario):
    """Two interruptions and two fallbacks later: same metrics, same weights, every step logged once."""
    s = scenario
    for key in ("test/acc", "test/loss", "val/acc_best", "global_step"):
        assert s["res3"]["metrics"][key] == s["ref"]["metrics"][key], key
    final = torch.load(s["run_dir"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ref = torch.load(s["ref_dir"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, value in ref["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name
    assert train_steps(s["run_dir"]) == train_steps(s["ref_dir"]) == list(range(STEPS))
