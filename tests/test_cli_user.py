"""The command line as a new user meets it: each common mistake ends with one clear line and leaves
nothing behind; off a terminal, training prints plain progress lines and none of the known noise.

Most checks call spelab.preflight / spelab.cli in-process; a few run `run.py` in a subprocess (each
costs a Python start), and the full training run is marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cfg_utils import CONF, ROOT

from spelab.cli import ToolError, check_lm_checkpoint
from spelab.errors import ConfigError
from spelab.preflight import DryRun, UnknownKeyError, preflight, suggest


def _run(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "SPELAB_PROGRESS": "plain"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args, f"paths.root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


# ------------------------------------------------------------------ preflight (in-process)


def test_unknown_key_names_the_nearest_valid_one() -> None:
    with pytest.raises(UnknownKeyError, match=r"did you mean model\.num_heads\?") as err:
        preflight(["model.nheads=4"], CONF)
    assert "+model.nheads" not in str(err.value)  # not Hydra's advice, which leads to a traceback


def test_unknown_top_level_key_finds_the_nested_one() -> None:
    with pytest.raises(UnknownKeyError, match=r"task\.datamodule\.batch_size"):
        preflight(["batch_size=8"], CONF)


def test_added_key_that_the_constructor_refuses() -> None:
    """`+model.nheads=4` composes, but Transformer has no such argument: caught before training."""
    with pytest.raises(UnknownKeyError, match=r"arguments of spelab\.nn\.Transformer; did you mean model\.num_heads"):
        preflight(["+model.nheads=4"], CONF)


def test_invalid_value_says_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"model\.num_heads=3; allowed: a divisor of model\.d_model"):
        preflight(["model.num_heads=3"], CONF)


def test_unknown_option_lists_the_options_without_the_search_path() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        preflight(["attention=foo"], CONF)
    assert "performer" in str(err.value) and "search path" not in str(err.value)


def test_dry_run_names_the_run_dir_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(DryRun) as err:
        preflight(["dry_run=true", f"paths.root_dir={tmp_path}"], CONF)
    assert str(err.value) == f"{tmp_path}/logs/runs/listops/softmax-none/seed0"
    assert list(tmp_path.iterdir()) == []


def test_valid_command_passes_and_hydra_flags_are_left_to_hydra() -> None:
    assert preflight(["debug=smoke", "model.d_model=32"], CONF) is not None
    assert preflight(["-m", "seed=0,1"], CONF) is None


def test_suggest_prefers_siblings() -> None:
    keys = ["trainer.max_steps", "trainer.max_epochs", "model.num_heads", "task.datamodule.batch_size"]
    assert suggest("trainer.max_step", keys)[0] == "trainer.max_steps"
    assert suggest("model.nheads", keys) == ["model.num_heads"]


# ------------------------------------------------------------------ run.py mistakes (subprocess)


def test_run_py_mistake_is_one_line_fast_and_leaves_nothing(tmp_path: Path) -> None:
    out = _run(tmp_path, "model.nheads=4", timeout=120)
    assert out.returncode == 1
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in out.stderr  # one line, no traceback
    assert "did you mean model.num_heads?" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_run_py_dry_run_creates_nothing(tmp_path: Path) -> None:
    out = _run(tmp_path, "dry_run=true", "attention=linear", timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"run dir: {tmp_path}/logs/runs/listops/linear-none/seed0" in out.stdout
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ evaluate / generate arguments


def _fake_run(tmp_path: Path, kind: str, name: str) -> Path:
    (tmp_path / ".hydra").mkdir(parents=True)
    (tmp_path / ".hydra" / "config.yaml").write_text(f"task:\n  name: {name}\n  kind: {kind}\n")
    ckpt = tmp_path / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not read by the check")
    return ckpt


def test_tool_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="missing.ckpt does not exist"):
        check_lm_checkpoint(tmp_path / "missing.ckpt", "spelab.generate")
    with pytest.raises(ToolError, match="is a directory"):
        check_lm_checkpoint(tmp_path, "spelab.generate")
    stray = tmp_path / "stray.ckpt"
    stray.write_bytes(b"x")
    with pytest.raises(ToolError, match="no .hydra/config.yaml"):
        check_lm_checkpoint(stray, "spelab.evaluate")
    ckpt = _fake_run(tmp_path / "run", "classification", "listops")
    with pytest.raises(ToolError, match="task 'listops' .*needs a language-model run"):
        check_lm_checkpoint(ckpt, "spelab.evaluate")
    check_lm_checkpoint(_fake_run(tmp_path / "lm", "lm", "music"), "spelab.evaluate")  # accepted


def test_tool_main_exits_with_one_line(tmp_path: Path) -> None:
    from spelab import evaluate

    ckpt = _fake_run(tmp_path / "run", "classification", "listops")
    with pytest.raises(SystemExit) as err:
        evaluate.main([f"ckpt={ckpt}", f"output_dir={tmp_path / 'out'}"])
    assert str(err.value).startswith("spelab.evaluate: error: ") and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ progress lines


def test_plain_progress_line_has_step_loss_rate_eta_and_best(capsys: pytest.CaptureFixture) -> None:
    import torch

    from spelab.progress import PlainProgress

    ckpt = SimpleNamespace(best_model_score=torch.tensor(0.5), monitor="val/acc")
    trainer = SimpleNamespace(
        global_step=0, max_steps=100, callback_metrics={}, checkpoint_callback=ckpt, is_global_zero=True
    )
    cb = PlainProgress(every_n_steps=10, every_s=1e9)
    cb.on_train_start(trainer, None)
    for step in range(1, 21):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, None, {"loss": torch.tensor(1.25)}, None, step)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[spelab] training from step 0 to 100"
    assert len(lines) == 3 and lines[1].startswith("[spelab] step 10/100 (10%) | loss 1.2500 | ")
    assert "it/s | ETA " in lines[2] and lines[2].endswith("best val/acc 0.5000")


@pytest.mark.slow
def test_training_off_a_terminal_prints_progress_and_no_noise(tmp_path: Path) -> None:
    out = _run(tmp_path, "debug=smoke", "progress.every_n_steps=1", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "[spelab] no checkpoint found" in text and "starting from step 0" in text
    for step in range(1, 5):
        assert f"[spelab] step {step}/4 " in text
    assert text.count("Seed set to 0") == 1  # one handler per log line
    assert "config\n" in text and "├── model" in text  # the config tree, once
    for noise in ("Epoch 0/-2", "FLOPs", "litlogger", "anonymous setting", "srun", "LeafSpec"):
        assert noise not in text, noise
    # a relaunch after the run finished says so and starts nothing
    again = _run(tmp_path, "debug=smoke", "progress.every_n_steps=1", timeout=600)
    assert "already done" in again.stdout


@pytest.mark.slow
def test_missing_data_dir_fails_before_a_wandb_run(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        "debug=smoke",
        "task.datamodule.source=official",
        f"task.datamodule.data_dir={tmp_path / 'nowhere'}",
        timeout=600,
    )
    assert out.returncode == 1
    assert "no ListOps files" in out.stderr
    assert not list(tmp_path.rglob("wandb"))


def test_bar_label_counts_steps_when_epochs_are_unbounded() -> None:
    from spelab.progress import StepBar

    bar = StepBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=400, global_step=120)
    assert bar._get_train_description(0).strip() == "Epoch 0 · step 120/400"  # Lightning: "Epoch 0/-2"
    bar._trainer = SimpleNamespace(max_epochs=3, max_steps=-1, global_step=5)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"


def test_model_summary_has_no_flops(capsys: pytest.CaptureFixture) -> None:
    from spelab.progress import ModelSummary

    data = [
        (" ", ["0"]),
        ("Name", ["model"]),
        ("Type", ["Transformer"]),
        ("Params", ["1.2 K"]),
        ("Mode", ["train"]),
        ("FLOPs", ["0"]),
    ]
    ModelSummary.summarize(data, 1200, 1200, 0.005, {"train": 1, "eval": 0}, 0)
    out = capsys.readouterr().out
    assert "Transformer" in out and "Total params: 1.2 K" in out and "FLOPs" not in out


def test_long_data_preparation_reports_how_far_it_is(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from spelab.data.count_progress import CountProgress

    log = logging.getLogger("spelab.test_progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        progress = CountProgress(4, "tokenising music21 pieces", log, every_s=0.0)
        for _ in range(4):
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "tokenising music21 pieces: 4 to do (cached afterwards)"
    assert lines[-1].startswith("tokenising music21 pieces: 4/4 (100%), ") and len(lines) == 5
