"""`make gpu-check` reports a GPU test run as passed only when every GPU test that exists ran and none
failed or errored: the H100 run stored in bench/results (12 passed, 13 errors after a conftest
fallback) is a failure. Runs on the CPU: the verdict is pure logic over pytest's counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.gpu_check as gpu_check

ROOT = Path(__file__).resolve().parents[1]
CLEAN = {"rc": 0, "passed": 12, "skipped": 1, "summary": "12 passed, 1 skipped, 338 deselected in 20s"}
ALL_13 = {"rc": 0, "collected": 13, "collection_errors": 0, "summary": "13/351 tests collected (338 deselected)"}


def test_a_clean_complete_run_passes():
    assert gpu_check.judge_tests(CLEAN, ALL_13) == []


def test_the_stored_h100_run_with_errors_is_a_failure():
    stored = json.loads((ROOT / "bench" / "results" / "gpu_check.json").read_text())["pytest_gpu"]
    stored = {k: v for k, v in stored.items() if k not in ("not_ok", "expected")}
    why = gpu_check.judge_tests(stored, ALL_13)
    assert "13 errors" in why and any("conftest" in w for w in why), why


def test_errors_failures_and_missing_tests_each_fail():
    assert "2 errors" in gpu_check.judge_tests({**CLEAN, "rc": 1, "errors": 2}, ALL_13)
    assert "1 failed" in gpu_check.judge_tests({**CLEAN, "rc": 1, "failed": 1}, ALL_13)
    fewer = {**CLEAN, "passed": 5}  # the run ended (or collected) early, yet said nothing failed
    assert gpu_check.judge_tests(fewer, ALL_13) == ["6 GPU tests ran of the 13 that exist"]
    broken = {**ALL_13, "rc": 2, "collection_errors": 1}
    assert any("could not all be collected" in w for w in gpu_check.judge_tests(CLEAN, broken))
    assert "no GPU test passed" in gpu_check.judge_tests({"rc": 5, "summary": ""}, ALL_13)
    assert "pytest was killed by the timeout" in gpu_check.judge_tests({**CLEAN, "rc": 124}, ALL_13)


def test_counts_read_errors_from_pytest_closing_line():
    counts = gpu_check._counts("....\n= 12 passed, 1 skipped, 338 deselected, 13 errors in 23.49s =\n")
    assert (counts["passed"], counts["skipped"], counts["errors"]) == (12, 1, 13)
    assert gpu_check._counts("1 passed, 1 error in 2s")["errors"] == 1


@pytest.mark.slow  # collects the whole suite (~30 s on a loaded machine)
def test_the_gpu_tests_are_counted_without_a_gpu():
    expected = gpu_check.count_gpu_tests()
    assert expected["rc"] == 0 and expected["collection_errors"] == 0, expected
    assert expected["collected"] >= 13, expected  # tests/nn/test_attention_gpu.py and the SPE CUDA checks
