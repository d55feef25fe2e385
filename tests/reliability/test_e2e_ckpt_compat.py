"""A run dir's checkpoint from another configuration is refused with the differing keys listed, both
when resuming an unfinished run and when a finished run would be skipped."""

from __future__ import annotations

import json

import pytest

from spelab.errors import CheckpointMismatchError

BASE = ["debug=smoke", "logger=csv", "trainer.max_steps=6"]


def _train(make_cfg, run_dir, *extra):
    from spelab.train import train

    return train(make_cfg([*BASE, *extra], run_dir=run_dir))


def test_resume_with_another_configuration_is_refused(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="fail_at_step"):
        _train(make_cfg, run_dir, "fail_at_step=4")  # leaves checkpoints/last.ckpt of an unfinished run
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    with pytest.raises(CheckpointMismatchError) as info:
        _train(make_cfg, run_dir, "model.d_model=32", "task.module.lr=0.01")
    err = info.value
    assert set(err.differences) == {"model.d_model", "task.module.lr"}
    assert err.differences["model.d_model"] == (16, 32)
    assert "model.d_model" in str(err) and "task.module.lr" in str(err)
    # the same configuration (longer budget, other checkpoint cadence: allowed) resumes and finishes
    res = _train(make_cfg, run_dir, "trainer.max_steps=8", "ckpt_every_n_steps=4")
    assert res["status"] == "done" and res["metrics"]["global_step"] == 8


def test_finished_run_is_not_reported_for_another_configuration(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    assert _train(make_cfg, run_dir)["status"] == "done"
    before = json.loads((run_dir / "results.json").read_text())
    with pytest.raises(CheckpointMismatchError, match="model.num_layers"):
        _train(make_cfg, run_dir, "model.num_layers=2")
    assert json.loads((run_dir / "results.json").read_text()) == before  # the finished run's record is kept
