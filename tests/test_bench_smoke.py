"""The benchmarks run end to end (at tiny sizes, into a temporary results dir): `make bench` and
`make gpu-check` are not run by CI, so this keeps their code from rotting. No timing is asserted."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import bench.bench_attention as bench_attention
import bench.bench_spe as bench_spe
import bench.bench_train_step as bench_train_step
import bench.common as common


@pytest.fixture(autouse=True)
def tmp_results(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    return tmp_path


def _check(results, name, out_dir):
    assert results, f"{name}: no results"
    for r in results:
        assert isinstance(r.value, float), r
        skipped = "skipped" in (r.note or "")
        assert skipped or math.isfinite(r.value), r
    payload = json.loads((out_dir / f"{name}_cpu.json").read_text())
    assert len(payload["results"]) == len(results)


def test_attention_benchmark_runs(monkeypatch, tmp_results):
    tiny = dataclasses.replace(
        bench_attention.CPU,
        heads=2,
        dim=16,
        tokens=64,
        lengths=(16, 64),
        repeats=1,
        warmup=0,
        max_seconds=0.5,
        gen_tokens=32,
        softmax_tokens=64,
    )
    monkeypatch.setattr(bench_attention, "CPU", tiny)
    _check(bench_attention.main("cpu"), "attention", tmp_results)


def test_spe_benchmark_runs(monkeypatch, tmp_results):
    tiny = dataclasses.replace(bench_spe.CPU, length=48, batch=2, flat=((64, 1), (16, 4)), repeats=1, warmup=0)
    monkeypatch.setattr(bench_spe, "CPU", tiny)
    # small heads too: the Triton kernels' part runs them in the interpreter (conftest.py) when triton is there
    for name, value in (("HEADS", 2), ("DIM", 8), ("REALIZATIONS", 16), ("SINES", 3)):
        monkeypatch.setattr(bench_spe, name, value)
    results = bench_spe.main("cpu")
    _check(results, "spe", tmp_results)
    kernel_results = [r for r in results if "Triton" in r.name]
    assert kernel_results and (len(kernel_results) == 3 or "skipped" in kernel_results[0].note), kernel_results


def test_train_step_benchmark_runs_with_the_gpu_only_comparison(monkeypatch, tmp_results):
    monkeypatch.setitem(
        bench_train_step.SIZES,
        "cpu",
        dict(batch=1, length=16, steps=3, lightning_steps=6, lightning_d=32, lightning_layers=1),
    )
    results = bench_train_step.spe_overhead(torch.device("cpu"), compare_shared=True)
    assert [r.name.split(": ")[1] for r in results] == [
        "sineSPE / no PE",
        "convSPE / no PE",
        "sineSPE with strategy='shared' / no PE",
    ]
    _check(bench_train_step.main("cpu"), "train_step", tmp_results)


def test_modern_benchmark_runs(monkeypatch, tmp_results):
    import bench.bench_modern as bench_modern

    tiny = bench_modern.Sizes(length=32, batch=1, repeats=1, warmup=0, max_seconds=0.5)
    monkeypatch.setattr(bench_modern, "CPU", tiny)
    _check(bench_modern.main("cpu"), "modern", tmp_results)


@pytest.mark.slow
def test_grid_cell_benchmark_runs(monkeypatch, tmp_results):
    import bench.bench_grid_cell as bench_grid_cell

    monkeypatch.setattr(bench_grid_cell, "CELLS", (("listops", "softmax-none"),))
    monkeypatch.setattr(bench_grid_cell, "EXTRA_OVERRIDES", ("trainer.max_steps=3", "debug=smoke"))
    _check(bench_grid_cell.main("cpu"), "grid_cell", tmp_results)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sine_op", "conv_step"])
def test_ab_revision_runs_against_head(monkeypatch, case):
    """bench.ab_revision: HEAD's package imported beside the working tree, both timed (tiny sizes)."""
    import bench.ab_revision as ab_revision

    monkeypatch.setattr(ab_revision, "H", 2)
    monkeypatch.setattr(ab_revision, "D", 4)
    monkeypatch.setattr(ab_revision, "R", 4)
    monkeypatch.setattr(ab_revision, "OP_SIZE", (1, 16))
    monkeypatch.setattr(ab_revision, "STEP_SIZE", (1, 16, 8, 1))
    medians = ab_revision.compare("HEAD", case, repetitions=1)
    baseline = "performer" if case.endswith("_op") else "none"
    assert set(medians) == {baseline, "spelab_old", "spelab"}
    assert all(math.isfinite(v) and v > 0 for v in medians.values())
    assert "spelab_old" not in __import__("sys").modules


def test_machine_benchmark_runs(monkeypatch, tmp_results):
    import bench.bench_machine as bench_machine

    tiny = bench_machine.Sizes(large_mib=2, code_mib=1, matmul=(16, 16, 32), repeats=2, warmup=0)
    monkeypatch.setattr(bench_machine, "CPU", tiny)
    results = bench_machine.main("cpu")
    _check(results, "machine", tmp_results)
    assert [r.unit for r in results] == ["GB/s", "GB/s", "GFLOP/s"]
    assert all(r.value > 0 for r in results)
    assert json.loads((tmp_results / "machine_cpu.json").read_text())["env"]["cpu"]
