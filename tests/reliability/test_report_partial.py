"""`python -m spelab.report` over a sweep dir whose results.json files are partly damaged: truncated
(killed while copying), corrupt (binary garbage), foreign (another tool's JSON, a JSON list) or partial
(keys of the contract missing). Each is listed as such; the good runs are still tabulated and plotted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .e2e import ROOT, cli_env

pytestmark = pytest.mark.slow


def _good(run_dir: Path, acc: float) -> dict:
    att, pos = run_dir.parent.name.split("-")
    res = {
        "status": "done",
        "task": "listops",
        "attention": att,
        "pos_enc": pos,
        "seed": int(run_dir.name.removeprefix("seed")),
        "sweep_name": "s",
        "metrics": {"test/acc": acc},
        "params": 10,
        "wall_time_s": 1.0,
        "output_dir": str(run_dir),
        "error": None,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(res, indent=2))
    return res


def test_report_lists_damaged_results_and_renders_the_rest(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, acc in enumerate((0.30, 0.40)):
        _good(sweep / "listops" / "softmax-none" / f"seed{seed}", acc)
    _good(sweep / "listops" / "linear-none" / "seed0", 0.25)
    # the damaged ones
    truncated = sweep / "listops" / "linear-none" / "seed1"
    _good(truncated, 0.5)
    text = (truncated / "results.json").read_bytes()
    (truncated / "results.json").write_bytes(text[: len(text) // 2])
    corrupt = sweep / "listops" / "linear-none" / "seed2"
    corrupt.mkdir(parents=True)
    (corrupt / "results.json").write_bytes(bytes(range(256)) * 4)
    foreign = sweep / "other_tool" / "run7"
    foreign.mkdir(parents=True)
    (foreign / "results.json").write_text(json.dumps({"accuracy": 0.99, "model": "bert"}))
    a_list = sweep / "other_tool" / "run8"
    a_list.mkdir(parents=True)
    (a_list / "results.json").write_text("[1, 2, 3]")
    partial = sweep / "listops" / "softmax-none" / "seed5"
    partial.mkdir(parents=True)
    (partial / "results.json").write_text(json.dumps({"status": "done", "metrics": {"test/acc": 0.9}}))

    out = subprocess.run(
        [sys.executable, "-m", "spelab.report", str(sweep)],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    md = (sweep / "summary.md").read_text()
    section = md.split("## Unusable results.json files", 1)[1]
    for run_dir, kind in (
        (truncated, "unreadable results.json (truncated or corrupt)"),
        (corrupt, "unreadable results.json (truncated or corrupt)"),
        (foreign, "foreign results.json (not written by spelab)"),
        (a_list, "foreign results.json (not written by spelab): a JSON list"),
        (partial, "partial results.json: missing task, attention, pos_enc, seed"),
    ):
        line = next((ln for ln in section.splitlines() if f"`{run_dir}`" in ln), None)
        assert line is not None and kind in line, (run_dir, section)
    # the rest is rendered: softmax-none over its two good seeds (the partial one is not averaged in)
    assert "0.3500 ± 0.0707 (2" in md, md
    assert "0.2500" in md  # linear-none's one good run
    assert (sweep / "bars_listops.png").is_file()
