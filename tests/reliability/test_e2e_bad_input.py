"""Bad input fails before any heavy work (no data generated, no model built), naming key, value and
what is allowed."""

from __future__ import annotations

import json

import pytest

from spelab.errors import ConfigError

from .e2e import cli


def _fresh(cfg, tmp_path):
    """Point the data cache at an empty dir: if it is still absent afterwards, no data was built."""
    cfg.paths.data_dir = str(tmp_path / "fresh_data")
    return tmp_path / "fresh_data"


BAD = [
    (["pos_enc=sinespe", "model.pos_enc.num_realizations=0"], "model.pos_enc.num_realizations", "0", "positive"),
    (["pos_enc=sinespe", "model.pos_enc.num_sines=-2"], "model.pos_enc.num_sines", "-2", "positive"),
    (["pos_enc=convspe", "model.pos_enc.kernel_size=0"], "model.pos_enc.kernel_size", "0", "positive"),
    (["model.num_heads=3"], "model.num_heads", "3", "divisor of model.d_model=16"),
    (["task.datamodule.max_length=-5"], "task.datamodule.max_length", "-5", "positive"),
    (["model.dropout=1.5"], "model.dropout", "1.5", "[0, 1)"),
    (["pos_enc=rope", "model.d_model=12", "model.num_heads=4"], "model.num_heads", "4", "even head_dim"),
    (["pos_enc=learned", "model.max_len=10"], "model.max_len", "10", "task.datamodule.max_length=48"),
    (["attention=performer", "model.attention.num_features=0"], "model.attention.num_features", "0", "positive"),
    (["task.module.lr=-0.1"], "task.module.lr", "-0.1", "> 0"),
]


@pytest.mark.parametrize("overrides,key,value,allowed", BAD, ids=[b[1] + "=" + b[2] for b in BAD])
def test_bad_values_fail_before_heavy_work(make_cfg, tmp_path, overrides, key, value, allowed):
    from spelab.train import train

    run_dir = tmp_path / "run"
    cfg = make_cfg(["debug=smoke", "logger=csv", *overrides], run_dir=run_dir)
    data = _fresh(cfg, tmp_path)
    with pytest.raises(ConfigError) as info:
        train(cfg)
    msg = str(info.value)
    assert f"{key}={value}" in msg and allowed in msg, msg
    assert not data.exists() and not (run_dir / "checkpoints").exists()
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "failed" and key in res["error"]


def test_unknown_group_option_lists_the_allowed_ones(tmp_path):
    out = cli(["attention=flash", f"hydra.run.dir={tmp_path / 'run'}"], timeout=120)
    assert out.returncode != 0
    err = out.stderr
    assert "attention" in err and "flash" in err
    assert all(opt in err for opt in ("softmax", "performer", "linear"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_bad_value_on_the_command_line_is_one_clear_message(tmp_path):
    out = cli(["debug=smoke", "logger=csv", "model.num_heads=3", f"hydra.run.dir={tmp_path / 'run'}"], timeout=180)
    assert out.returncode != 0
    assert "model.num_heads=3" in out.stderr and "divisor of model.d_model=16" in out.stderr
    assert "Traceback" not in out.stderr
