"""Every run dir records the resolved config, package versions, git commit and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from spelab.reliability.run_metadata import save_run_metadata, wandb_metadata

REPO = Path(__file__).resolve().parents[2]


def test_run_meta_contents(tmp_path):
    cfg = OmegaConf.create(
        {"seed": 3, "model": {"d_model": 16, "max_len": "${task.max_length}"}, "task": {"max_length": 40}}
    )
    meta = save_run_metadata(tmp_path, cfg, argv=["run.py", "seed=3"])
    on_disk = json.loads((tmp_path / "run_meta.json").read_text())
    assert on_disk["config"] == {"seed": 3, "model": {"d_model": 16, "max_len": 40}, "task": {"max_length": 40}}
    assert yaml.safe_load((tmp_path / "config_resolved.yaml").read_text()) == on_disk["config"]
    assert on_disk["command"] == [sys.executable, "run.py", "seed=3"]
    assert on_disk["packages"]["torch"] == metadata.version("torch")
    assert on_disk["packages"]["lightning"] == metadata.version("lightning")
    assert on_disk["torch"]["version"] == torch.__version__
    assert on_disk["python"] == sys.version.split()[0]
    # git, computed independently
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert on_disk["git"]["commit"] == head.stdout.strip()
        assert isinstance(on_disk["git"]["dirty"], bool)
    assert meta == json.loads(json.dumps(meta, default=str))  # JSON-able, equal to the file
    assert "config" not in wandb_metadata(meta)["run_meta"]


def test_each_start_is_appended_to_history(tmp_path):
    save_run_metadata(tmp_path, {"seed": 0}, argv=["a"])
    save_run_metadata(tmp_path, {"seed": 0}, argv=["b"])
    lines = (tmp_path / "run_meta.jsonl").read_text().splitlines()
    assert [json.loads(line)["command"][-1] for line in lines] == ["a", "b"]
    assert json.loads((tmp_path / "run_meta.json").read_text())["command"][-1] == "b"
