"""Wall time of whole cells of the committed CPU grid (experiments/cpu_grid/), run again now.

Each cell runs as `python run.py <its committed overrides>` in a subprocess with one thread (as the grid
ran under hydra/launcher=slurm_cpu), into a temporary log dir. The figure is the run's own
`wall_time_s` (fit + test, from its results.json) and the target is the committed grid's median for the
same cell over its seeds: a change that makes training slower shows here. The committed times were
measured while the grid's 2 jobs shared the 2-core machine with other work (experiments/cpu_grid/
README.md), so the target is loose on an idle machine; compare the figures between commits.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import Result, main_cli, resolve_device, write_results

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "experiments" / "cpu_grid" / "cpu_grid_v1"
# the cheapest cell and the paper's method on the Performer (both on ListOps: offline data, no fetch)
CELLS = (("listops", "softmax-none"), ("listops", "performer-sinespe"))
EXTRA_OVERRIDES: tuple[str, ...] = ()  # tests shorten the runs with these


def committed_runs(task: str, cell: str) -> list[Path]:
    """The committed run dirs (one per seed) of a cell."""
    return sorted(p.parent for p in (GRID / task / cell).glob("seed*/results.json"))


def rerun(run_dir: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    """(command, environment) that re-runs a committed cell as the grid ran it: its own overrides
    without the sweep (which would launch the whole grid), one thread, offline; `extra` appended."""
    overrides = [o for o in yaml.safe_load((run_dir / "overrides.yaml").read_text()) if not o.startswith("+sweep=")]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # as conf/hydra/launcher/slurm_cpu.yaml
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    return [sys.executable, "run.py", *overrides, "logger=csv", *extra], env


def run_cell(run_dir: Path, log_dir: Path) -> tuple[float, float]:
    """(wall_time_s from the fresh results.json, process wall time) for the committed run's command."""
    cmd, env = rerun(run_dir, f"paths.log_dir={log_dir}", "force=true", *EXTRA_OVERRIDES)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    (res,) = [json.loads(p.read_text()) for p in log_dir.rglob("results.json")]
    return float(res["wall_time_s"]), elapsed


def main(device: str = "cpu") -> list[Result]:
    dev = resolve_device(device)
    results: list[Result] = []
    if dev.type != "cpu":
        return results  # the grid is a CPU grid
    for task, cell in CELLS:
        runs = committed_runs(task, cell)
        if not runs:
            raise FileNotFoundError(f"no committed runs of {task}/{cell} under {GRID}")
        target = statistics.median(json.loads((r / "results.json").read_text())["wall_time_s"] for r in runs)
        with tempfile.TemporaryDirectory() as tmp:
            wall, process = run_cell(runs[0], Path(tmp))
        results.append(
            Result(
                f"cpu_grid {task} {cell} seed0: fit + test",
                wall,
                "s",
                target=round(target, 1),
                op="<=",
                note=f"whole process {process:.1f} s; target: the committed grid's median over {len(runs)} seeds",
            )
        )
        print(results[-1].line(), flush=True)
    write_results("grid_cell", dev, results)
    return results


if __name__ == "__main__":
    main_cli(main, __doc__)
