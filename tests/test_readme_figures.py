"""Figures quoted in README.md and experiments/ are the ones in the committed result files: the
Benchmarks table is rendered from bench/results (bench/render_figures.py) and the music extrapolation
tables and quotes are checked against their nll_eval.json. Fails when a file and a quote differ."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import bench.render_figures as render

ROOT = Path(__file__).resolve().parents[1]
MUSIC = ROOT / "experiments" / "music"


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index(render.BEGIN) : text.index(render.END) + len(render.END)]


def test_readme_benchmarks_table_is_rendered_from_the_result_files():
    assert render.render() == _readme_block(), "run `python -m bench.render_figures` (after measuring again)"


def test_a_changed_result_file_is_caught(tmp_path, monkeypatch):
    shutil.copytree(render.RESULTS, tmp_path, dirs_exist_ok=True)
    payload = json.loads((tmp_path / "train_step_cpu.json").read_text())
    payload["results"][-1]["value"] = 1.03  # the Lightning ratio README once quoted without a file
    (tmp_path / "train_step_cpu.json").write_text(json.dumps(payload))
    monkeypatch.setattr(render, "RESULTS", tmp_path)
    assert render.render() != _readme_block()


def test_rows_without_a_file_say_so():
    for row in render.ROWS:
        assert (row.file is None) == bool(row.static), row.label
    assert all(
        "no file: not re-measured" in line
        for line in _readme_block().splitlines()
        if "(H100, N=16k" in line and "SPE" in line
    )


def _runs(sweep: str) -> dict[str, dict]:
    data = json.loads((MUSIC / "results" / sweep / "nll_eval.json").read_text())
    return {r["label"]: r for r in data["runs"]}


def _table_rows(text: str, prefix: str, sweep: str) -> dict[str, list[str]]:
    """The rows of the first table after the README names `results/<sweep>/` (other tables share labels)."""
    lines = text[text.index(f"results/{sweep}/") :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith(prefix + "-"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize(
    "sweep,prefix",
    [("music_extrapolation_L64_s1000", "linear"), ("music_extrapolation_performer_L64_s1000", "performer")],
)
def test_music_tables_quote_their_nll_eval_files(sweep, prefix):
    readme = (MUSIC / "README.md").read_text()
    runs, rows = _runs(sweep), _table_rows(readme, prefix, sweep)
    assert sorted(rows) == sorted(runs), (sorted(rows), sorted(runs))
    for label, cells in rows.items():
        run = runs[label]
        within, beyond, gap = (float(c) for c in cells[1:4])
        assert (within, beyond) == (round(run["nll_within"], 4), round(run["nll_beyond"], 4)), label
        assert gap == round(run["nll_beyond"] - run["nll_within"], 4), label


def test_music_quotes_match_the_files():
    perf = _runs("music_extrapolation_performer_L64_s1000")
    quoted = re.search(r"NLL per token beyond\s+the training length ([^:]+):", (ROOT / "README.md").read_text())
    got = {name: float(v) for v, name in re.findall(r"([\d.]+) \((\w+)\)", quoted.group(1))}
    names = {
        "sinusoidal": "sinusoidal",
        "learned": "learned",
        "rope": "rope",
        "sineSPE": "sinespe",
        "convSPE": "convspe",
    }
    assert got == {k: round(perf[f"performer-{v}"]["nll_beyond"], 2) for k, v in names.items()}
    s400 = _runs("music_extrapolation_L64_s400")
    beyond = [r["nll_beyond"] for r in s400.values()]
    assert f"(beyond: {min(beyond):.3f}–{max(beyond):.3f}" in (MUSIC / "README.md").read_text()


def test_music_seed_table_quotes_its_nll_eval_aggregate():
    """The 3-seed table (mean ± std) is the `aggregate` of its nll_eval.json."""
    sweep = "music_extrapolation_L64_s800"
    data = json.loads((MUSIC / "results" / sweep / "nll_eval.json").read_text())
    agg = {a["label"]: a for a in data["aggregate"]}
    rows = _table_rows((MUSIC / "README.md").read_text(), "linear", sweep)
    assert sorted(rows) == sorted(agg), (sorted(rows), sorted(agg))
    for label, cells in rows.items():
        a = agg[label]
        assert int(cells[0]) == a["n"], label
        for cell, key in zip(cells[1:5], ("test_nll", "nll_within", "nll_beyond", "gap")):
            assert cell == f"{a[key + '_mean']:.4f} ± {a[key + '_std']:.4f}", (label, key, cell)
