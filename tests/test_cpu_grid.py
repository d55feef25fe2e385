"""The committed CPU grid (experiments/cpu_grid/): its report is what spelab.report makes of its
results, and one of its cells, re-run from its committed command line, gives its committed metric."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.bench_grid_cell import rerun
from spelab.report import build_report

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "experiments" / "cpu_grid"
SWEEPS = [GRID / "cpu_grid_v1", GRID / "cpu_grid_modern_v1"]
REPORT = GRID / "report"
# The paper's grid: 2 tasks x 3 attention x 6 schemes x 3 seeds.
PAPER_CELLS = 2 * 3 * 6 * 3


def _collect_module():
    spec = importlib.util.spec_from_file_location("collect_sweep", ROOT / "scripts" / "collect_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))]


def test_paper_grid_is_complete_and_finished():
    res = _results(SWEEPS[0])
    assert len(res) == PAPER_CELLS, f"{len(res)} results.json under {SWEEPS[0]}, expected {PAPER_CELLS}"
    assert {r["status"] for r in res} == {"done"}, [r["output_dir"] for r in res if r["status"] != "done"]
    cells = {(r["task"], r["attention"], r["pos_enc"], r["seed"]) for r in res}
    assert len(cells) == PAPER_CELLS  # no cell twice, none missing
    for run in SWEEPS[0].rglob("results.json"):  # each run keeps its config and its command line
        assert (run.parent / "config_resolved.yaml").is_file() and (run.parent / "overrides.yaml").is_file()


def test_modern_grid_runs_or_records_unsupported():
    res = _results(SWEEPS[1])
    assert len(res) == 3 * 6 * 3
    by_status = pd.Series([r["status"] for r in res]).value_counts().to_dict()
    # a logit bias (alibi, kerple, fire) on performer / linear: recorded, never trained
    assert by_status == {"done": 36, "unsupported": 18}, by_status
    for r in res:
        bias = r["pos_enc"] in ("alibi", "kerple", "fire")
        assert (r["status"] == "unsupported") == (bias and r["attention"] != "softmax"), r["output_dir"]


def test_committed_report_is_what_spelab_report_makes(tmp_path):
    build_report(SWEEPS, out_dir=tmp_path, plots=False)
    for name in ("summary.md", "summary.csv"):
        assert (tmp_path / name).read_text() == (REPORT / name).read_text(), (
            f"{REPORT / name} is stale: regenerate it with the command in {GRID / 'README.md'}"
        )
    # runs.csv names each run's absolute directory, which depends on the checkout's location
    fresh = pd.read_csv(tmp_path / "runs.csv").drop(columns="run_dir")
    committed = pd.read_csv(REPORT / "runs.csv").drop(columns="run_dir")
    pd.testing.assert_frame_equal(fresh, committed)


def test_collect_sweep_copies_finished_runs_and_flags_unfinished(tmp_path):
    mod = _collect_module()
    sweep = tmp_path / "sweep"
    done = sweep / "listops" / "softmax-none" / "seed0"
    unfinished = sweep / "listops" / "softmax-none" / "seed1"
    for run in (done, unfinished):
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text("- attention=softmax\n")
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (done / "results.json").write_text("{}")
    (done / "config_resolved.yaml").write_text("seed: 0\n")
    (sweep / ".submitit" / "1_0" / ".hydra").mkdir(parents=True)  # submitit's own dirs are not runs
    dest = tmp_path / "dest"
    assert mod.main([str(sweep), str(dest)]) == 1  # one run unfinished: refuses to look complete
    out = dest / "listops" / "softmax-none" / "seed0"
    assert sorted(p.name for p in out.iterdir()) == ["config_resolved.yaml", "overrides.yaml", "results.json"]
    assert not (dest / "listops" / "softmax-none" / "seed1").exists()
    assert mod.main([str(sweep), str(dest), "--allow-unfinished"]) == 0
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mod.collect(tmp_path / "nope", dest)


def _cheapest_cell() -> Path:
    runs = [p.parent for p in (SWEEPS[0] / "listops").rglob("results.json")]
    return min(runs, key=lambda r: json.loads((r / "results.json").read_text())["wall_time_s"])


@pytest.mark.slow
def test_one_committed_cell_reproduces_its_metrics(tmp_path):
    """CPU training is deterministic with one thread: the same command gives the same numbers. The
    tolerance covers a CPU whose vector units round the last bits differently (another ISA): the test
    loss within 1e-3 relative, the accuracy within 1% of the 500 test examples."""
    cell = _cheapest_cell()
    committed = json.loads((cell / "results.json").read_text())
    cmd, env = rerun(cell, f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={tmp_path / 'data'}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (fresh,) = [json.loads(p.read_text()) for p in (tmp_path / "logs").rglob("results.json")]
    assert fresh["status"] == "done"
    want, got = committed["metrics"], fresh["metrics"]
    assert got["global_step"] == want["global_step"]
    assert got["test/loss"] == pytest.approx(want["test/loss"], rel=1e-3), (cell, got, want)
    assert got["test/acc"] == pytest.approx(want["test/acc"], abs=0.01), (cell, got, want)


LONG = ROOT / "experiments" / "cpu_grid_long"


def test_long_training_sweep_is_complete_at_its_step_count():
    """experiments/cpu_grid_long: ListOps x Performer x 4 schemes x 3 seeds, each trained 2000 steps."""
    runs = sorted((LONG / "cpu_grid_long_v1").rglob("results.json"))
    res = [json.loads(p.read_text()) for p in runs]
    assert len(res) == 4 * 3 and {r["status"] for r in res} == {"done"}
    assert {r["pos_enc"] for r in res} == {"none", "sinusoidal", "sinespe", "convspe"}
    assert {r["metrics"]["global_step"] for r in res} == {2000}


def test_long_training_report_is_what_spelab_report_makes(tmp_path):
    build_report([LONG / "cpu_grid_long_v1"], out_dir=tmp_path, plots=False)
    for name in ("summary.md", "summary.csv"):
        assert (tmp_path / name).read_text() == (LONG / "report" / name).read_text(), (
            f"{LONG / 'report' / name} is stale: regenerate it with the command in {LONG / 'README.md'}"
        )
