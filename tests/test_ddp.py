"""DDP on CPU (gloo, 2 processes started by Lightning) trains the same model as one process.

Comparable set-up: the global batch is the same (1 x 8 versus 2 ranks x 4), `overfit_batches=1` turns
shuffling off so both see the same 8 training examples every step (DistributedSampler gives rank r the
examples r, r+2, ...: together the same set), evaluation batches are halved the same way, dropout is 0
(debug=smoke), the seed is the same and the test runs on the last weights.

Tolerance: metrics agree to 1e-4 (absolute; fp32 all-reduce changes the summation order only), weights
to atol 1e-5 + rtol 1e-4 after 10 AdamW steps at lr 1e-2 -- except attention's `qkv.bias`, whose key
part has an exactly-zero true gradient (softmax is invariant to it): Adam divides its rounding noise by
its own magnitude and moves it by up to lr per step in either run, with no effect on the outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "debug=smoke",
    "logger=csv",
    "callbacks.progress_bar=null",
    "+trainer.overfit_batches=1",
    "trainer.max_steps=10",
    "trainer.val_check_interval=1",
    "trainer.limit_val_batches=1.0",
    "task.module.warmup_steps=0",
    "task.module.lr=0.01",
    "task.module.schedule=constant",
    "test_ckpt=last",
]


def _run(out: Path, *overrides: str) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="offline",
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *COMMON, *overrides, f"hydra.run.dir={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "done", res
    return res


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    one = _run(tmp_path / "one", "task.datamodule.batch_size=8", "task.datamodule.eval_batch_size=8")
    two = _run(
        tmp_path / "two",
        "task.datamodule.batch_size=4",
        "task.datamodule.eval_batch_size=4",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "++trainer.strategy=ddp",
    )
    assert (tmp_path / "two" / "train_ddp_process_1.log").exists(), "the second rank did not run"
    m1, m2 = one["metrics"], two["metrics"]
    assert m1["global_step"] == m2["global_step"] == 10
    for key in ("test/loss", "test/acc", "val/loss", "val/acc", "train/acc"):
        assert abs(m1[key] - m2[key]) <= 1e-4, (key, m1[key], m2[key])
    # the run trained at all (else equal metrics would prove nothing): it fits its one batch
    assert m1["train/acc"] >= 0.5, m1

    w1 = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    w2 = torch.load(tmp_path / "two" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert w1.keys() == w2.keys()
    compared = 0
    for name, t1 in w1.items():
        if name.endswith("qkv.bias") or not t1.is_floating_point():
            continue
        torch.testing.assert_close(t1, w2[name], atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        compared += 1
    assert compared >= 10
