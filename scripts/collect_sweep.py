"""Copy what a sweep's record needs (not its checkpoints) into a directory that can be committed.

    python scripts/collect_sweep.py logs/sweeps/cpu_grid_v1 experiments/cpu_grid/cpu_grid_v1

For every run dir under SWEEP_DIR that holds a results.json: results.json, config_resolved.yaml and
Hydra's overrides (.hydra/overrides.yaml -> overrides.yaml: the command line that re-runs the cell),
under the same relative path (<task>/<attention>-<pos_enc>/seed<N>[-hash]). Checkpoints, W&B and CSV
logs stay behind. Run dirs without a results.json (unfinished) are listed and not copied; the exit
status is 1 then, so a half-finished sweep is not committed by accident (--allow-unfinished overrides).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

FILES = {"results.json": "results.json", "config_resolved.yaml": "config_resolved.yaml"}
OVERRIDES = Path(".hydra") / "overrides.yaml"


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Run dirs Hydra created under sweep_dir (they hold .hydra/), submitit's own dirs excluded."""
    return sorted(p.parent for p in sweep_dir.rglob(".hydra") if ".submitit" not in p.parts)


def collect(sweep_dir: Path, dest: Path) -> tuple[list[Path], list[Path]]:
    """(run dirs copied, run dirs without results.json)."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep_dir} does not exist (pass logs/sweeps/<sweep_name>)")
    copied, unfinished = [], []
    for run in run_dirs(sweep_dir):
        if not (run / "results.json").is_file():
            unfinished.append(run)
            continue
        out = dest / run.relative_to(sweep_dir)
        out.mkdir(parents=True, exist_ok=True)
        for src, name in FILES.items():
            if (run / src).is_file():
                shutil.copy2(run / src, out / name)
        if (run / OVERRIDES).is_file():
            shutil.copy2(run / OVERRIDES, out / "overrides.yaml")
        copied.append(run)
    return copied, unfinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--allow-unfinished", action="store_true", help="copy what finished, exit 0")
    args = parser.parse_args(argv)
    copied, unfinished = collect(args.sweep_dir, args.dest)
    print(f"collect_sweep: {len(copied)} run(s) copied to {args.dest}")
    for run in unfinished:
        print(f"collect_sweep: unfinished (no results.json): {run}", file=sys.stderr)
    return 1 if unfinished and not args.allow_unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
