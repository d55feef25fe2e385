"""One-call GPU check: `python -m bench.gpu_check` (`make gpu-check`).

1. `pytest -m gpu -q tests` (every test directory; modules that fail to import are reported, and the
   GPU tests that could be collected still run);
2. every benchmark (bench/bench_*.py) with device cuda, at GPU sizes (N up to 16384), within a time
   budget (modules left when it is spent are recorded as skipped);
3. writes bench/results/gpu_check.json (+ .md and the pytest log) and prints a summary.

Peer libraries (fla, performer-pytorch) are used only when importable. Sized to finish in a few
minutes on one H100 (target < 8 min in total). Exit status 0 when every GPU test that exists ran and
none failed or errored (`judge_tests`) and no benchmark crashed; 2 without CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # works before `pip install -e .` too
    sys.path.insert(0, str(ROOT / "src"))

from bench import run_all as runner  # noqa: E402
from bench.common import RESULTS_DIR, env_info  # noqa: E402


def _env() -> dict:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key, val in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("WANDB_MODE", "offline")):
        env.setdefault(key, val)
    return env


def _counts(text: str) -> dict:
    """Counts from pytest's closing line ('3 passed, 1 skipped, 2 errors in 4.5s')."""
    lines = [ln for ln in text.strip().splitlines() if re.search(r"\b(passed|failed|skipped|error|deselected)", ln)]
    last = lines[-1] if lines else ""
    counts = {
        k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", last)
    }
    if "error" in counts:
        counts["errors"] = counts.pop("error") + counts.get("errors", 0)
    counts["summary"] = last.strip("= ")
    return counts


OUTCOMES = ("passed", "failed", "skipped", "errors", "xfailed", "xpassed")


def count_gpu_tests(timeout_s: int = 120) -> dict:
    """How many GPU tests exist: `pytest --collect-only -m gpu` (collection needs no GPU)."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "tests", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    text = proc.stdout + proc.stderr
    found = re.search(r"(\d+)(?:/\d+)? tests? collected", text)
    errors = re.search(r"(\d+) errors? during collection|(\d+) errors?\b", text)
    return {
        "rc": proc.returncode,
        "collected": int(found.group(1)) if found else 0,
        "collection_errors": int(next(g for g in errors.groups() if g)) if errors else 0,
        "summary": text.strip().splitlines()[-1] if text.strip() else "",
    }


def judge_tests(tests: dict, expected: dict | None) -> list[str]:
    """Why the GPU test run is not a pass (empty: it passed). Errors count as failures, and so does a
    run that executed fewer tests than exist, a fallback without the conftest, or no test at all."""
    why = []
    if tests.get("rc") == 124:
        why.append("pytest was killed by the timeout")
    elif tests.get("rc") != 0:
        why.append(f"pytest exit status {tests.get('rc')}")
    for key in ("failed", "errors"):
        if tests.get(key, 0):
            why.append(f"{tests[key]} {key}")
    if "first_attempt" in tests:
        why.append("the GPU tests could not be collected with the conftest (" + tests.get("note", "") + ")")
    if not tests.get("passed", 0):
        why.append("no GPU test passed")
    ran = sum(tests.get(k, 0) for k in OUTCOMES)
    if expected is None or expected.get("rc") not in (0,) or expected.get("collection_errors"):
        why.append(f"the GPU tests could not all be collected ({(expected or {}).get('summary', 'not counted')})")
    elif ran < expected["collected"]:
        why.append(f"{ran} GPU tests ran of the {expected['collected']} that exist")
    return why


def run_gpu_tests(timeout_s: int) -> dict:
    """pytest -m gpu over every test directory. If a conftest cannot even be imported (pytest exit
    code 3/4, e.g. a GPU image without Hydra), run again with --noconftest so that the GPU tests
    that need no fixture still run, and say so."""
    start = time.time()
    res = _pytest(
        ["-m", "gpu", "-q", "tests", "-p", "no:cacheprovider", "--continue-on-collection-errors"],
        timeout_s,
        "gpu_check_pytest.log",
    )
    if res["rc"] in (3, 4):
        left = max(30, timeout_s - int(time.time() - start))
        retry = _pytest(
            ["-m", "gpu", "-q", "tests", "-p", "no:cacheprovider", "--continue-on-collection-errors", "--noconftest"],
            left,
            "gpu_check_pytest_noconftest.log",
        )
        retry["first_attempt"] = res
        retry["note"] = "conftest import failed; reran with --noconftest"
        res = retry
    res["wall_s"] = round(time.time() - start, 1)
    return res


def _pytest(args: list[str], timeout_s: int, log_name: str) -> dict:
    cmd = [sys.executable, "-m", "pytest", *args]
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout_s)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        out, rc = out + f"\n[gpu_check] pytest killed after {timeout_s} s", 124
    log = RESULTS_DIR / log_name  # kept beside gpu_check.json (commit both); its tail is in the JSON too
    log.write_text(out)
    print(out[-4000:], flush=True)
    res = {
        "rc": rc,
        "wall_s": round(time.time() - start, 1),
        "log": _rel(log),
        "log_tail": out.strip().splitlines()[-40:],
    }
    res.update(_counts(out))
    return res


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run_benchmarks(budget_s: float, only: list[str] | None) -> list[dict]:
    names = [n for n in runner.discover() if not only or n in only]
    start, records = time.time(), []
    for name in names:
        if time.time() - start > budget_s:
            records.append(
                {
                    "name": name,
                    "status": "skipped",
                    "error": f"time budget of {budget_s:.0f} s spent",
                    "results": [],
                    "wall_s": 0.0,
                }
            )
            continue
        records.append(runner.run_module(name, "cuda"))
        torch.cuda.empty_cache()
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GPU tests + GPU benchmarks in one call.")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--pytest-timeout", type=int, default=240, help="seconds for the GPU tests")
    ap.add_argument("--bench-budget", type=float, default=240.0, help="seconds after which no new benchmark starts")
    args = ap.parse_args(argv)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS_DIR / "gpu_check.json"
    if not torch.cuda.is_available():
        msg = "CUDA is not available: run `make gpu-check` on a machine with an NVIDIA GPU and a CUDA build of torch"
        print(msg)
        out_json.write_text(json.dumps({"status": "no-cuda", "message": msg}, indent=2) + "\n")
        return 2

    start = time.time()
    tests = None if args.skip_tests else run_gpu_tests(args.pytest_timeout)
    if tests is not None:
        tests["expected"] = count_gpu_tests()
        tests["not_ok"] = judge_tests(tests, tests["expected"])
    records = (
        [] if args.skip_bench else run_benchmarks(args.bench_budget, [x for x in args.only.split(",") if x] or None)
    )
    if records:
        runner.write_summary(records, "cuda")
    passed, missed, crashed = runner.summarize(records)
    tests_ok = tests is None or not tests["not_ok"]
    payload = {
        "status": "ok" if tests_ok and not crashed else "failed",
        "env": env_info("cuda"),
        "total_wall_s": round(time.time() - start, 1),
        "pytest_gpu": tests,
        "targets_passed": passed,
        "targets_missed": missed,
        "benchmarks_crashed": crashed,
        "benchmarks": records,
    }
    out_json.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    print("\n======== gpu_check summary")
    print(f"device: {payload['env'].get('gpu')}, torch {torch.__version__}, total {payload['total_wall_s']} s")
    if tests is not None:
        print(
            f"pytest -m gpu: rc={tests['rc']} ({tests.get('summary', '')}) in {tests['wall_s']} s; "
            + ("; ".join(tests["not_ok"]) or "all GPU tests ran and none failed or errored")
        )
    for r in records:
        missed_here = [x["name"] for x in r["results"] if x.get("passed") is False]
        print(
            f"bench {r['name']}: {r['status']} in {r['wall_s']} s; missed: {missed_here or 'none'}"
            + (f"; {r['error']}" if r.get("error") else "")
        )
    print(f"targets passed {passed}, missed {missed}; benchmarks crashed {crashed}; status {payload['status']}")
    print(out_json)
    return 0 if payload["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
