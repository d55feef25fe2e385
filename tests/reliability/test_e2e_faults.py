"""Faults, end to end through `python run.py`: kill -9 and resume, NaN loss, unwritable output dir,
W&B misconfigured online. Marked slow (each is one or two smoke runs); CI runs them."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import torch

from .e2e import LONG_SMOKE, cli, cli_env, csv_rows, popen, results, train_steps

pytestmark = pytest.mark.slow


def _wait_for_checkpoint(path: Path, proc, min_step: int, hang_s: float = 600.0) -> int:
    """Block until the run's `path` holds a checkpoint of step >= min_step (written atomically, so a
    file that exists loads whole); return its step. Synchronised on that event, not on time: `hang_s`
    only turns a hung run into a failure."""
    end, seen = time.monotonic() + hang_s, None
    while True:
        if proc.poll() is not None:
            pytest.fail(f"run ended before {path} reached step {min_step}:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"hung: {path} did not reach step {min_step}")
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is not None and stamp != seen:
            seen = stamp
            step = torch.load(path, map_location="cpu", weights_only=False)["global_step"]
            if step >= min_step:
                return step
        time.sleep(0.02)


def test_kill9_then_rerun_resumes_and_matches_uninterrupted_run(tmp_path, data_dir):
    """Tolerance: none. The resumed run must reproduce the uninterrupted run's metrics bit for bit
    (same seed, CPU), which needs the in-epoch data position and the RNG streams restored too."""
    # test_ckpt=last: the test metrics come from the final weights, which are also compared bitwise.
    # Enough steps that a kill shortly after the first checkpoint lands mid-run even on an idle machine.
    steps = 120
    common = [a for a in LONG_SMOKE if not a.startswith("trainer.max_steps=")]
    common += [f"trainer.max_steps={steps}", "test_ckpt=last", f"paths.data_dir={data_dir}"]
    ref = cli(common + [f"hydra.run.dir={tmp_path / 'ref'}"])
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = results(tmp_path / "ref")

    run_dir = tmp_path / "run"
    args = common + [f"hydra.run.dir={run_dir}"]
    # the kill lands right after a checkpoint of a seeded step is seen, while the next steps train
    min_step = random.Random(18).choice(range(6, 31, 3))
    proc = popen(args)
    try:
        _wait_for_checkpoint(run_dir / "checkpoints" / "last.ckpt", proc, min_step)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    killed_at = ckpt["global_step"]
    assert min_step <= killed_at < steps, "the kill must come after a checkpoint and before the end"
    assert not (run_dir / "results.json").exists() or results(run_dir)["status"] != "done"

    again = cli(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr
    got = results(run_dir)
    assert got["status"] == "done"
    for key in ("test/acc", "test/loss", "val/acc_best", "global_step"):
        assert got["metrics"][key] == expected["metrics"][key], (key, killed_at)
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ref_final = torch.load(tmp_path / "ref" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == ref_final["global_step"] == steps
    for name, value in ref_final["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), (name, killed_at)
    # one continuous run in the CSV log: every training step once, in order
    assert train_steps(run_dir) == train_steps(tmp_path / "ref") == list(range(steps))


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path, data_dir, monkeypatch, make_cfg):
    """A test-only hook makes the loss NaN at step 7 (checkpoints every 3 steps)."""
    from spelab.errors import NonFiniteLossError
    from spelab.tasks.classification import ClassificationTask
    from spelab.train import train

    original = ClassificationTask.training_step

    def poisoned(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == 7 else loss

    monkeypatch.setattr(ClassificationTask, "training_step", poisoned)
    run_dir = tmp_path / "run"
    cfg = make_cfg(LONG_SMOKE, run_dir=run_dir)
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg)
    assert info.value.step == 7 and "step 7" in str(info.value)
    res = results(run_dir)
    assert res["status"] == "failed" and "NonFiniteLossError" in res["error"] and "step 7" in res["error"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 6  # the last checkpoint before the bad step, not a NaN state
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_huge_learning_rate_fails_cleanly_with_results_failed(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    out = cli(
        [
            "debug=smoke",
            "logger=csv",
            "task.module.lr=1e30",
            "trainer.max_steps=20",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert out.returncode != 0
    assert "Non-finite training loss" in out.stderr and "at step" in out.stderr
    assert "Traceback" not in out.stderr
    res = results(run_dir)
    assert res["status"] == "failed" and "Non-finite training loss" in res["error"]


@pytest.mark.parametrize("which", ["hydra.run.dir", "paths.output_dir"])
def test_unwritable_output_dir_is_one_clear_message(tmp_path, data_dir, which):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output dir should go")
    target = blocker / "run"
    args = ["debug=smoke", "logger=csv", f"paths.data_dir={data_dir}", f"{which}={target}"]
    if which == "paths.output_dir":
        args.append(f"hydra.run.dir={tmp_path / 'hydra'}")
    out = cli(args)
    assert out.returncode != 0
    assert f"Cannot write to output directory {target}" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "Epoch" not in out.stdout  # failed before any training


def test_wandb_online_without_credentials_goes_on_with_local_loggers(tmp_path, data_dir):
    import socket

    home = tmp_path / "home"
    home.mkdir()
    server = socket.socket()  # a server that accepts connections (so the run tries W&B) but says nothing
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    env = cli_env(HOME=str(home), WANDB_MODE="online", WANDB_BASE_URL=f"http://127.0.0.1:{port}")
    env.pop("WANDB_API_KEY", None)
    run_dir = tmp_path / "run"
    out = cli(["debug=smoke", "wandb_online=true", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"], env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "W&B logging disabled" in out.stdout + out.stderr
    assert "CSV logger" in out.stdout + out.stderr
    assert results(run_dir)["status"] == "done"
    assert any(r.get("train/loss") for r in csv_rows(run_dir))
    server.close()


def test_wandb_online_with_unreachable_server_logs_offline_without_stalling(tmp_path, data_dir):
    """A key but no server: W&B itself would retry for ~100 s; the run checks the server first,
    logs offline (to be synced later) and finishes."""
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(HOME=str(home), WANDB_MODE="online", WANDB_BASE_URL="http://127.0.0.1:9", WANDB_API_KEY="x" * 40)
    run_dir = tmp_path / "run"
    out = cli(["debug=smoke", "wandb_online=true", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"], env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "W&B server unreachable (127.0.0.1:9" in out.stdout + out.stderr
    assert "W&B logging disabled" not in out.stdout + out.stderr
    assert results(run_dir)["status"] == "done"
    # no stall, shown by what happened rather than by a clock: W&B was started offline (no online run,
    # so none of W&B's connection retries), after the one probe of the server
    assert list((run_dir / "wandb").glob("offline-run-*")), "the offline W&B run is missing"
    assert not list((run_dir / "wandb").glob("run-*")), "W&B started online against an unreachable server"
