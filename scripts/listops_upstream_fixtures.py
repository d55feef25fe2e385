"""Write the ListOps fixtures of tests/lra/listops_upstream/ by running the *official* generator.

    python scripts/listops_upstream_fixtures.py /path/to/google-research/long-range-arena/lra_benchmarks/data/listops.py

The official script (google-research/long-range-arena, lra_benchmarks/data/listops.py) draws from the
global `random` module, unseeded, and writes rows in `set` order (which depends on PYTHONHASHSEED). Each
fixture is made by running it in a fresh interpreter, with absl/tensorflow replaced by tiny stubs (only
flags and file writing are used), `random.seed(seed)` set first, under two PYTHONHASHSEED values: the two
row sets must be equal, and their sorted union is written as `seed<seed>_min<a>_max<b>.tsv`.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "lra" / "listops_upstream"
# (seed, min_length, max_length, samples): small bounds for several seeds, and the official bounds once
CASES = [(0, 20, 160, 60), (1, 20, 160, 60), (2, 20, 160, 60), (3, 5, 80, 200), (0, 500, 2000, 12)]

# Run in the child: stub absl + tensorflow, seed `random`, execute the official file as __main__.
RUNNER = r"""
import random, sys, types
path, seed, out_dir, n, lo, hi = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
values = {"task": "basic", "num_train_samples": n, "num_valid_samples": 0, "num_test_samples": 0,
          "max_depth": 10, "max_args": 10, "max_length": hi, "min_length": lo, "output_dir": out_dir}
flags = types.ModuleType("absl.flags")
flags.FLAGS = types.SimpleNamespace(**values)
flags.DEFINE_string = flags.DEFINE_integer = lambda *a, **k: None
app = types.ModuleType("absl.app")
app.UsageError = Exception
app.run = lambda main: main([path])
absl = types.ModuleType("absl"); absl.app, absl.flags = app, flags
v1 = types.ModuleType("tensorflow.compat.v1")
v1.logging = types.SimpleNamespace(info=lambda *a, **k: None)
v1.io = types.SimpleNamespace(gfile=types.SimpleNamespace(GFile=open))
compat = types.ModuleType("tensorflow.compat"); compat.v1 = v1
tf = types.ModuleType("tensorflow"); tf.compat = compat
sys.modules.update({"absl": absl, "absl.app": app, "absl.flags": flags, "tensorflow": tf,
                    "tensorflow.compat": compat, "tensorflow.compat.v1": v1})
random.seed(seed)
source = open(path).read()
exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
"""


def run_upstream(script: Path, seed: int, lo: int, hi: int, n: int, hash_seed: str) -> set[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", RUNNER, str(script), str(seed), tmp, str(n), str(lo), str(hi)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        with open(Path(tmp) / "basic_train.tsv", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))[1:]
    return {(src, tgt) for src, tgt in rows}


def main() -> None:
    script = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, lo, hi, n in CASES:
        sets = [run_upstream(script, seed, lo, hi, n, h) for h in ("0", "1", "12345")]
        assert all(s == sets[0] for s in sets), "row sets differ across PYTHONHASHSEED"
        assert len(sets[0]) == n
        path = OUT / f"seed{seed}_min{lo}_max{hi}.tsv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["Source", "Target"])
            writer.writerows(sorted(sets[0]))
        print(f"{path.name}: {n} rows")


if __name__ == "__main__":
    main()
