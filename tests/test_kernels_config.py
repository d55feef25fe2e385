"""The config key `kernels` (= SPELAB_KERNELS): composes, fails early on a bad value, and a `debug=smoke`
run of sineSPE + Performer goes through the Triton kernels in Triton's interpreter on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cfg_utils import ROOT, compose_config
from kernel_utils import interpreted_kernels


def test_the_key_defaults_to_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("SPELAB_KERNELS", raising=False)
    assert compose_config().kernels == "auto"
    monkeypatch.setenv("SPELAB_KERNELS", "torch")
    assert compose_config().kernels == "torch"
    assert compose_config(["kernels=triton"]).kernels == "triton"


def test_a_bad_value_fails_before_any_work(monkeypatch, make_cfg) -> None:
    from spelab.train import check_config

    monkeypatch.setenv("SPELAB_KERNELS", "auto")
    with pytest.raises(ValueError, match=r"kernels: must be one of auto\|torch\|triton\|cpp, got 'cuda'"):
        check_config(make_cfg(["kernels=cuda"]))
    check_config(make_cfg(["kernels=torch"]))
    assert os.environ["SPELAB_KERNELS"] == "torch"  # what data workers and DDP children inherit


def smoke_args(kernels: str, tmp_path: Path, data_dir: Path) -> list[str]:
    """`python run.py` for a two-step Performer + sineSPE smoke run with `kernels=<kernels>`."""
    return [
        sys.executable,
        str(ROOT / "run.py"),
        "debug=smoke",
        "pos_enc=sinespe",
        "attention=performer",
        f"kernels={kernels}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={data_dir}",
    ]


@pytest.mark.slow
def test_smoke_run_through_the_interpreted_kernels(
    monkeypatch, tmp_path: Path, subprocess_env: dict, data_dir: Path
) -> None:
    interpreted_kernels(monkeypatch)  # skips (or fails in CI) without triton
    args = smoke_args("triton", tmp_path, data_dir)
    env = dict(subprocess_env, TRITON_INTERPRET="0")
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    # the same run without the interpreter reaches the kernels with CPU tensors and says what to do
    assert out.returncode != 0 and "need CUDA tensors, or TRITON_INTERPRET=1" in out.stderr, out.stderr[-3000:]
    env["TRITON_INTERPRET"] = "1"
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    [res_path] = (tmp_path / "logs" / "runs" / "listops" / "performer-sinespe").glob("seed0-*/results.json")
    res = json.loads(res_path.read_text())
    assert res["status"] == "done" and res["metrics"]["test/loss"] > 0


@pytest.mark.slow
@pytest.mark.needs("the compiled CPU kernels (a C++ compiler and ninja)")
def test_smoke_run_through_the_compiled_cpu_kernels(tmp_path: Path, subprocess_env: dict, data_dir: Path) -> None:
    """`python run.py ... kernels=cpp` on the CPU: sineSPE's shared codes through the compiled kernels."""
    from spelab.nn.kernels.cpu import load_cpu_kernels

    try:
        load_cpu_kernels(required=True)  # built here once, so that the run below loads it from the cache
    except RuntimeError as error:
        pytest.skip(f"cannot build the compiled CPU kernels: {str(error)[:300]}")
    out = subprocess.run(
        smoke_args("cpp", tmp_path, data_dir),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [res_path] = (tmp_path / "logs" / "runs" / "listops" / "performer-sinespe").glob("seed0-*/results.json")
    res = json.loads(res_path.read_text())
    assert res["status"] == "done" and res["metrics"]["test/loss"] > 0
