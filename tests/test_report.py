"""spelab.report on synthetic sweep directories (results.json written here): statistics, counts, files."""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
from pathlib import Path

import pytest

from spelab import report

ATTS = ("softmax", "linear")
POSS = ("none", "sinespe")
SEEDS = (0, 1, 2)


def _write_run(root: Path, task: str, att: str, pos: str, seed: int, **fields) -> Path:
    run_dir = root / task / f"{att}-{pos}" / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    res = {
        "status": "done",
        "task": task,
        "attention": att,
        "pos_enc": pos,
        "seed": seed,
        "metrics": {},
        "params": 1234,
        "wall_time_s": 1.5,
        "output_dir": str(run_dir),
    }
    res.update(fields)
    (run_dir / "results.json").write_text(json.dumps(res))
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, dict]:
    """listops (accuracy) and music (an LM, NLL, substitute data) over ATTS x POSS x SEEDS, with one
    failed listops run, one unreadable results.json and NLL curves for the music runs."""
    rng = random.Random(7)
    root = tmp_path / "sweep_a"
    values: dict = {}
    for att in ATTS:
        for pos in POSS:
            for seed in SEEDS:
                if (att, pos, seed) == ("linear", "sinespe", 2):
                    _write_run(
                        root,
                        "listops",
                        att,
                        pos,
                        seed,
                        status="failed",
                        metrics={},
                        error="NonFiniteLossError: loss is nan at step 3",
                    )
                else:
                    acc = rng.uniform(0.1, 0.5)
                    values.setdefault(("listops", att, pos), []).append(acc)
                    _write_run(
                        root,
                        "listops",
                        att,
                        pos,
                        seed,
                        metrics={"test/acc": acc, "val/acc_best": acc + 0.01, "test/loss": 2.0},
                    )
                nll = rng.uniform(1.0, 3.0)
                values.setdefault(("music", att, pos), []).append(nll)
                run = _write_run(
                    root,
                    "music",
                    att,
                    pos,
                    seed,
                    metrics={"test/nll": nll, "test/loss": nll},
                    data={"substitute": True, "description": "synthetic chorales stand-in"},
                )
                positions = list(range(0, 64, 8))
                (run / "nll_vs_position.json").write_text(
                    json.dumps({"positions": positions, "nll": [nll + 0.01 * p for p in positions]})
                )
    # a run still going (or killed): a Hydra run dir without results.json
    (root / "music" / "linear-none" / "seed3" / ".hydra").mkdir(parents=True)
    # a run killed while writing: the report counts it as failed, it does not crash
    bad = root / "listops" / "softmax-none" / "seed9"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"status": "do')
    return root, values


def test_means_and_stds_match_an_independent_computation(sweep):
    root, values = sweep
    rep = report.build_report([root], plots=False)
    summ = rep.summary.set_index(["task", "attention", "pos_enc"])
    for (task, att, pos), vals in values.items():
        row = summ.loc[(task, att, pos)]
        assert row["metric"] == ("test/acc" if task == "listops" else "test/nll")
        assert row["n_done"] == len(vals)
        assert math.isclose(row["mean"], statistics.fmean(vals), rel_tol=1e-12)
        assert math.isclose(row["std"], statistics.stdev(vals), rel_tol=1e-9)


def test_failures_and_unreadable_files_are_counted(sweep):
    root, _ = sweep
    rep = report.build_report([root], plots=False)
    summ = rep.summary.set_index(["task", "attention", "pos_enc"])
    failed_cell = summ.loc[("listops", "linear", "sinespe")]
    assert (failed_cell["n_runs"], failed_cell["n_done"], failed_cell["n_failed"]) == (3, 2, 1)
    assert summ.loc[("listops", "softmax", "sinespe")]["n_failed"] == 0
    # the unreadable file is placed by its path (<task>/<attention>-<pos_enc>/seed<N>)
    unreadable_cell = summ.loc[("listops", "softmax", "none")]
    assert (unreadable_cell["n_runs"], unreadable_cell["n_done"], unreadable_cell["n_failed"]) == (4, 3, 1)
    assert int(summ["n_failed"].sum()) == 2
    going = summ.loc[("music", "linear", "none")]
    assert (going["n_runs"], going["n_done"], going["n_failed"], going["n_other"]) == (4, 3, 0, 1)
    assert int(summ["n_other"].sum()) == 1
    assert "Runs: 13, finished: 12, failed: 0, unfinished: 1." in rep.markdown
    failed = rep.runs[rep.runs["status"] == "failed"]
    assert len(failed) == 2
    assert any("unreadable" in str(e) for e in failed["error"])
    assert "NonFiniteLossError" in rep.markdown and "## Failed runs" in rep.markdown
    assert rep.markdown.count(", 1 failed") == 2


def test_files_are_written_and_consistent(sweep):
    root, values = sweep
    out = root / "report"
    rep = report.build_report([root], out_dir=out, plots=True)
    for name in (
        "runs.csv",
        "summary.csv",
        "summary.md",
        "bars_listops.png",
        "bars_music.png",
        "nll_vs_position_music.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / "nll_vs_position_listops.png").exists()  # no curves there
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(values)
    row = next(r for r in rows if (r["task"], r["attention"], r["pos_enc"]) == ("music", "linear", "none"))
    assert math.isclose(float(row["mean"]), statistics.fmean(values[("music", "linear", "none")]), rel_tol=1e-9)
    assert (out / "summary.md").read_text() == rep.markdown
    # the markdown cell shows mean ± std (n) of the right values, and marks substitute data
    vals = values[("listops", "softmax", "none")]
    assert f"{statistics.fmean(vals):.4f} ± {statistics.stdev(vals):.4f} (3), 1 failed" in rep.markdown
    assert "Substitute data" in rep.markdown and "synthetic chorales stand-in" in rep.markdown
    music_section = rep.markdown.split("## music")[1].split("##")[0]
    assert "lower is better" in music_section


def test_several_sweeps_compare_side_by_side(sweep, tmp_path):
    root, _ = sweep
    other = tmp_path / "sweep_b"
    _write_run(other, "listops", "softmax", "none", 0, metrics={"test/acc": 0.9})
    _write_run(other, "listops", "softmax", "none", 1, metrics={"test/acc": 0.7})
    rep = report.build_report([root, other], out_dir=tmp_path / "cmp", plots=True)
    b = rep.summary[rep.summary["sweep"] == "sweep_b"].iloc[0]
    assert math.isclose(b["mean"], 0.8) and math.isclose(b["std"], statistics.stdev([0.9, 0.7]))
    assert set(rep.summary["sweep"]) == {"sweep_a", "sweep_b"}
    assert (tmp_path / "cmp" / "bars_sweep_b_listops.png").is_file()


def test_single_seed_has_no_std_and_cli_prints_the_table(tmp_path, capsys):
    _write_run(tmp_path, "listops", "performer", "rope", 0, metrics={"test/acc": 0.25})
    assert report.main([str(tmp_path), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "| performer | 0.2500 (1) |" in out
    assert (tmp_path / "summary.md").is_file()


def test_missing_dir_fails_clearly(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "does not exist" in err


def test_malformed_curve_is_skipped(tmp_path):
    run = _write_run(tmp_path, "music", "linear", "none", 0, metrics={"test/nll": 2.0})
    (run / "nll_vs_position.json").write_text(json.dumps({"positions": [0, 1], "nll": [1.0]}))
    assert report.load_curve(run) is None
    rep = report.build_report([tmp_path], plots=True)
    assert not any("nll_vs_position" in f.name for f in rep.files)


def test_notebook_runs_on_a_sweep_dir(sweep, monkeypatch):
    """notebooks/compare_ablations.ipynb, executed with nbclient on the synthetic sweep, shows its cells."""
    import nbformat
    from nbclient import NotebookClient

    root, values = sweep
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("SWEEP_DIR", str(root))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(repo / "notebooks" / "compare_ablations.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(repo / "notebooks")}}
    ).execute()
    text = "\n".join(
        str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "synthetic sweep" not in text  # it used SWEEP_DIR
    vals = values[("music", "linear", "sinespe")]
    assert f"{statistics.fmean(vals):.4f} ± {statistics.stdev(vals):.4f} (3)" in text
    assert "NonFiniteLossError" in text and "1 task(s) with NLL-versus-position curves" in text
    assert "W&B section skipped" in text
