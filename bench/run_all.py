"""Run every benchmark module (bench/bench_*.py) and write its results with their targets.

    python -m bench.run_all --device cpu           # `make bench`
    python -m bench.run_all --device cuda --only attention,spe

Each module exposes `main(device) -> list[Result]` (and usually writes `bench/results/<name>_<device>
.json/.md` itself; it is written here when it did not). A summary of all modules goes to
`bench/results/summary_<device>.json/.md`. A module that crashes is reported and the others still
run; the exit status is 1 then (or, with --strict, also when a target is missed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from bench.common import RESULTS_DIR, Result, env_info, markdown_table, resolve_device, write_results

BENCH_DIR = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Benchmark names: bench_<name>.py -> <name>, sorted."""
    return sorted(p.stem[len("bench_") :] for p in BENCH_DIR.glob("bench_*.py"))


def run_module(name: str, device: str) -> dict:
    """Import bench.bench_<name>, run main(device); never raises (errors are recorded)."""
    start = time.time()
    print(f"\n######## bench_{name} ({device})", flush=True)
    record: dict = {"name": name, "status": "ok", "results": [], "error": None}
    try:
        mod = importlib.import_module(f"bench.bench_{name}")
        results = list(mod.main(device) or [])
        json_path = RESULTS_DIR / f"{name}_{resolve_device(device).type}.json"
        if not json_path.exists() or json_path.stat().st_mtime < start:
            write_results(name, device, results)
        record["results"] = [r.to_dict() if isinstance(r, Result) else r for r in results]
    except Exception as err:  # noqa: BLE001 - one broken benchmark must not hide the others
        traceback.print_exc()
        record.update(status="error", error=f"{type(err).__name__}: {err}")
    record["wall_s"] = round(time.time() - start, 2)
    print(f"######## bench_{name}: {record['status']} in {record['wall_s']} s", flush=True)
    return record


def summarize(records: list[dict]) -> tuple[int, int, int]:
    """(targets passed, targets missed, modules crashed)."""
    passed = sum(1 for r in records for x in r["results"] if x.get("passed") is True)
    missed = sum(1 for r in records for x in r["results"] if x.get("passed") is False)
    crashed = sum(1 for r in records if r["status"] != "ok")
    return passed, missed, crashed


def write_summary(records: list[dict], device: str, out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    dev = resolve_device(device).type
    out_dir.mkdir(parents=True, exist_ok=True)
    passed, missed, crashed = summarize(records)
    payload = {
        "device": dev,
        "env": env_info(device),
        "targets_passed": passed,
        "targets_missed": missed,
        "modules_crashed": crashed,
        "modules": records,
    }
    jpath, mpath = out_dir / f"summary_{dev}.json", out_dir / f"summary_{dev}.md"
    jpath.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [f"# Benchmarks ({dev})", "", f"targets passed {passed}, missed {missed}; modules crashed {crashed}", ""]
    for r in records:
        lines += [f"## {r['name']} ({r['status']}, {r['wall_s']} s)", ""]
        if r["error"]:
            lines += [f"error: `{r['error']}`", ""]
        rows = [Result(**{k: v for k, v in x.items() if k != "passed"}) for x in r["results"]]
        for row in rows:  # JSON null -> NaN for display
            row.value = float("nan") if row.value is None else row.value
        lines += [markdown_table(rows), ""]
    mpath.write_text("\n".join(lines))
    return jpath, mpath


def run_all(device: str, only: list[str] | None = None) -> list[dict]:
    resolve_device(device)
    names = discover()
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"--only: unknown benchmark(s) {unknown}; available: {names}")
        names = [n for n in names if n in only]
    return [run_module(n, device) for n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run every bench/bench_*.py and write bench/results/.")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    start = time.time()
    records = run_all(args.device, [x for x in args.only.split(",") if x] or None)
    jpath, mpath = write_summary(records, args.device)
    passed, missed, crashed = summarize(records)
    print(
        f"\n== {len(records)} benchmark modules in {time.time() - start:.0f} s: targets passed {passed}, "
        f"missed {missed}; modules crashed {crashed}\n{jpath}\n{mpath}"
    )
    return 1 if crashed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
