"""Issue 14's grid: every new attention x pos_enc pair composes; the possible ones build and run, the
impossible ones fail before any work naming the backends that take the scheme, are written as
`status: unsupported` and shown as n/a; the compatibility declared on the classes matches conf/; the
45-cell smoke sweep (slow) finishes with every cell done or unsupported."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import hydra.utils
import pytest
import torch

from cfg_utils import ATTENTIONS, MODERN_ATTENTIONS, MODERN_POS_ENCS, POS_ENCS, ROOT, compose_config
from spelab.compat import UnsupportedPairError, pair_problems
from spelab.validation import find_problems

ALL_ATT = (*ATTENTIONS, *MODERN_ATTENTIONS)
GRID_POS = ("none", "rope", "sinespe", "alibi", "kerple", "fire", "decay", "xpos", "cape")


@functools.lru_cache(maxsize=None)
def _cls(group: str, option: str):
    cfg = compose_config([f"{group}={option}"])
    return hydra.utils.get_class(cfg.model[group]._target_)


def _supported(att: str, pos: str) -> bool:
    backends = getattr(_cls("pos_enc", pos), "backends", None)
    return backends is None or att in backends


def test_each_backend_class_names_its_own_option():
    for att in ALL_ATT:
        assert _cls("attention", att).name == att


def test_schemes_only_name_existing_backends():
    for pos in (*POS_ENCS, *MODERN_POS_ENCS):
        backends = getattr(_cls("pos_enc", pos), "backends", None)
        assert backends is None or set(backends) <= set(ALL_ATT), pos


@pytest.mark.parametrize("pos", [p for p in MODERN_POS_ENCS if p != "rope2d"])
@pytest.mark.parametrize("att", ALL_ATT)
def test_every_new_cell_composes_and_builds_or_is_refused(att, pos):
    cfg = compose_config([f"attention={att}", f"pos_enc={pos}", "debug=smoke"])
    problems = find_problems(cfg)
    if not _supported(att, pos):
        assert len(problems) == 1 and isinstance(problems[0], UnsupportedPairError)
        assert "attention=softmax" in str(problems[0]) and att in str(problems[0])
        return
    assert problems == []
    model = hydra.utils.instantiate(cfg.model, vocab_size=17, causal=False)
    ids = torch.randint(1, 17, (2, 12))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 8:] = True
    out = model(ids, mask)
    assert out.shape == (2, 12, cfg.model.d_model) and torch.isfinite(out).all()


@pytest.mark.parametrize("att", ALL_ATT)
def test_rope2d_takes_every_backend_on_a_2d_task_and_no_1d_task(att):
    cfg = compose_config(["task=image", f"attention={att}", "pos_enc=rope2d", "debug=smoke"])
    assert find_problems(cfg) == []
    model = hydra.utils.instantiate(cfg.model, vocab_size=17, causal=False, prepend_cls=True)
    assert torch.isfinite(model(torch.randint(1, 17, (1, 64)))).all()  # 8 x 8 pixels + [CLS]
    (problem,) = pair_problems(compose_config(["task=listops", f"attention={att}", "pos_enc=rope2d"]))
    assert "task=image" in str(problem) and "1-D sequence" in str(problem)


def test_an_unsupported_pair_fails_before_any_work_and_says_so(tmp_path):
    from spelab.train import train

    cfg = compose_config(
        ["attention=performer", "pos_enc=alibi", "debug=smoke"],
        output_dir=tmp_path / "run",
        data_dir=tmp_path / "no_data",
    )
    with pytest.raises(UnsupportedPairError, match="attention=softmax"):
        train(cfg)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["status"] == "unsupported" and "alibi" in res["error"].lower()
    assert not (tmp_path / "no_data").exists()  # nothing was built


def test_report_shows_unsupported_cells_as_na(tmp_path):
    from spelab.report import load_runs, summarize, to_markdown

    for att, status in (("softmax", "done"), ("performer", "unsupported")):
        d = tmp_path / "listops" / f"{att}-alibi" / "seed0"
        d.mkdir(parents=True)
        (d / "results.json").write_text(
            json.dumps(
                {
                    "status": status,
                    "task": "listops",
                    "attention": att,
                    "pos_enc": "alibi",
                    "seed": 0,
                    "metrics": {"test/acc": 0.5} if status == "done" else {},
                    "output_dir": str(d),
                    "error": None if status == "done" else "UnsupportedPairError: ...",
                }
            )
        )
    runs = load_runs([tmp_path])
    md = to_markdown(summarize(runs), runs)
    assert "| performer | n/a |" in md and "failed: 0" in md and "unsupported (n/a): 1" in md
    assert "Failed runs" not in md


@pytest.mark.slow
def test_the_45_cell_smoke_grid_finishes_and_reports(tmp_path, subprocess_env):
    """`run.py -m attention=... pos_enc=... debug=smoke` (the issue's command): every cell done or
    unsupported, the sweep's exit code 0, and spelab.report renders n/a for the unsupported ones."""
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            f"attention={','.join(ALL_ATT)}",
            f"pos_enc={','.join(GRID_POS)}",
            "debug=smoke",
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep.rglob("results.json")]
    assert len(results) == len(ALL_ATT) * len(GRID_POS)
    for res in results:
        expected = "done" if _supported(res["attention"], res["pos_enc"]) else "unsupported"
        assert res["status"] == expected, res
    report = subprocess.run(
        [sys.executable, "-m", "spelab.report", str(sweep)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert "| performer |" in report.stdout and "n/a" in report.stdout and "failed: 0" in report.stdout


def test_readme_compatibility_matrix_matches_the_classes():
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| pos_enc \\ attention |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")][1:]
    assert set(header) == set(ALL_ATT)
    seen = set()
    for row in lines[start + 2 :]:
        if not row.startswith("|"):
            break
        cells = [c.strip() for c in row.strip("|").split("|")]
        for pos in (p.strip() for p in cells[0].split(" (")[0].split(",")):
            seen.add(pos)
            for att, cell in zip(header, cells[1:]):
                assert cell.startswith("✓") == _supported(att, pos), (pos, att, cell)
    assert seen == {*POS_ENCS, *MODERN_POS_ENCS}


def test_run_py_rope2d_on_listops_fails_fast_saying_why(tmp_path, subprocess_env):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "task=listops",
            "pos_enc=rope2d",
            "debug=smoke",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env,
        timeout=300,
    )
    assert out.returncode == 1
    # run.py's preflight: one line naming the key, the allowed tasks and why, before any run dir exists
    assert "task='listops'" in out.stderr and "allowed: task=image" in out.stderr and "no 2-D grid" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not any(tmp_path.rglob("results.json"))


@pytest.mark.slow
def test_run_py_rope2d_on_image_trains(tmp_path, subprocess_env):
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "task=image",
            "pos_enc=rope2d",
            "debug=smoke",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["status"] == "done"


def test_rope2d_needs_a_head_dim_divisible_by_4():
    problems = find_problems(compose_config(["task=image", "pos_enc=rope2d", "model.d_model=24", "model.num_heads=4"]))
    assert any(p.key == "model.num_heads" and "divisible by 4" in str(p) for p in problems)
