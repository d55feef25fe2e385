"""Same seed, same config, CPU: identical metrics and weights. Different seeds: different runs.
Every run dir records the resolved config, the package versions and the git commit (also in W&B)."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata

import pytest
import torch
import yaml

from .e2e import ROOT

pytestmark = pytest.mark.slow


def _run(make_cfg, run_dir, seed, logger="csv"):
    from spelab.train import train

    return train(
        make_cfg(
            ["debug=smoke", f"logger={logger}", f"seed={seed}", "trainer.max_steps=8", "model.dropout=0.1"],
            run_dir=run_dir,
        )
    )


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_same_seed_identical_different_seed_different(make_cfg, tmp_path):
    a = _run(make_cfg, tmp_path / "a", seed=3)
    b = _run(make_cfg, tmp_path / "b", seed=3)
    c = _run(make_cfg, tmp_path / "c", seed=4)
    assert a["status"] == b["status"] == c["status"] == "done"
    assert a["metrics"] == b["metrics"]  # every metric, exactly
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa if wa[k].is_floating_point())
    assert a["metrics"]["train/loss"] != c["metrics"]["train/loss"]


def test_run_dir_records_config_versions_and_commit(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    _run(make_cfg, run_dir, seed=0, logger="default")  # W&B (offline) + CSV
    meta = json.loads((run_dir / "run_meta.json").read_text())
    resolved = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    assert resolved == meta["config"] and resolved["seed"] == 0 and resolved["model"]["d_model"] == 16
    assert "${" not in (run_dir / "config_resolved.yaml").read_text()  # resolved, no interpolations left
    for pkg in ("torch", "lightning", "hydra-core", "wandb"):
        assert meta["packages"][pkg] == metadata.version(pkg)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert meta["git"]["commit"] == head.stdout.strip() and isinstance(meta["git"]["dirty"], bool)
    # W&B's offline run holds the same record in its config (read with the platform's record reader)
    from test_tracking import read_finished_run

    [run_file] = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    config: dict = {}
    for rec in read_finished_run(run_file):
        if rec.WhichOneof("record_type") == "config":
            config.update({it.key: json.loads(it.value_json) for it in rec.config.update})
    run_meta = config["run_meta"]
    assert run_meta["git"]["commit"] == meta["git"]["commit"]
    assert run_meta["packages"]["torch"] == meta["packages"]["torch"]
