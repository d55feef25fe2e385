"""validate_config: every bad value or impossible combination names key, value and what is allowed."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from spelab.errors import ConfigError
from spelab.validation import find_problems, validate_config


def base_cfg() -> dict:
    """A valid config shaped like the platform's (docs/layout.md, Configs)."""
    return {
        "seed": 0,
        "task": {
            "name": "listops",
            "kind": "classification",
            "monitor": "val/acc",
            "mode": "max",
            "datamodule": {
                "_target_": "x.ListOps",
                "batch_size": 8,
                "num_workers": 0,
                "max_length": 64,
                "num_train": 100,
                "num_val": 10,
            },
            "module": {"lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 10, "betas": [0.9, 0.98]},
            "num_classes": 10,
        },
        "model": {
            "d_model": 32,
            "num_layers": 2,
            "num_heads": 4,
            "ff_dim": 64,
            "dropout": 0.1,
            "max_len": 64,
            "attention": {
                "_target_": "spelab.nn.PerformerAttention",
                "_partial_": True,
                "num_features": 16,
                "redraw": "step",
            },
            "pos_enc": {
                "_target_": "spelab.nn.SineSPE",
                "_partial_": True,
                "num_realizations": 16,
                "num_sines": 4,
                "gated": True,
            },
        },
        "trainer": {
            "max_steps": 20,
            "max_epochs": -1,
            "gradient_clip_val": 1.0,
            "val_check_interval": 0.5,
            "limit_val_batches": 2,
        },
        "callbacks": {"model_checkpoint": {"every_n_train_steps": 5, "mode": "max"}},
        "logger": {"wandb": {"mode": "offline-or-anything"}},  # other tools' keys: not ours to judge
        "hydra": {"job": {"num_heads": "not checked"}},
    }


def with_value(path: str, value):
    cfg = base_cfg()
    node = cfg
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return cfg


def test_valid_config_passes():
    validate_config(base_cfg())
    validate_config(OmegaConf.create(base_cfg()))


BAD_VALUES = [
    ("model.pos_enc.num_realizations", 0, "positive integer"),
    ("model.pos_enc.num_sines", -3, "positive integer"),
    ("model.num_layers", 2.5, "positive integer"),
    ("model.dropout", 1.0, "[0, 1)"),
    ("model.dropout", -0.1, "[0, 1)"),
    ("task.datamodule.max_length", -5, "positive integer"),
    ("task.datamodule.batch_size", 0, "positive integer"),
    ("task.datamodule.num_workers", -1, ">= 0"),
    ("task.module.lr", 0.0, "> 0"),
    ("task.module.lr", float("nan"), "> 0"),
    ("task.module.betas", [0.9, 1.5], "[0, 1)"),
    ("model.attention.redraw", "sometimes", "'step', 'never'"),
    ("model.pos_enc.gated", "yes", "true or false"),
    ("trainer.max_steps", 0, "-1 (no limit)"),
    ("trainer.val_check_interval", 1.5, "(0, 1]"),
    ("seed", -1, "[0, 2**32 - 1]"),
    ("seed", "abc", "[0, 2**32 - 1]"),
    ("task.mode", "maximum", "'min' or 'max'"),
    ("callbacks.model_checkpoint.mode", "up", "'min' or 'max'"),
    ("model.num_layers", True, "positive integer"),  # a bool is not a size
]


@pytest.mark.parametrize("path,value,allowed", BAD_VALUES, ids=[f"{p}={v}" for p, v, _ in BAD_VALUES])
def test_bad_value_names_key_value_and_allowed(path, value, allowed):
    with pytest.raises(ConfigError) as info:
        validate_config(with_value(path, value))
    err = info.value
    assert err.key == path
    msg = str(err)
    assert path in msg and repr(value) in msg and allowed in msg


def test_kernel_size_of_convspe():
    cfg = base_cfg()
    cfg["model"]["pos_enc"] = {"_target_": "spelab.nn.ConvSPE", "num_realizations": 8, "kernel_size": 0}
    with pytest.raises(ConfigError, match=r"model\.pos_enc\.kernel_size=0"):
        validate_config(cfg)


def test_new_keys_checked_by_name():
    # a key no rule lists by its full name is still checked by its name's pattern
    cfg = with_value("task.datamodule.image_size", 0)
    cfg["task"]["datamodule"]["attn_dropout"] = 2.0
    keys = [p.key for p in find_problems(cfg)]
    assert keys == ["task.datamodule.image_size", "task.datamodule.attn_dropout"]
    # unknown names are left alone
    validate_config(with_value("task.datamodule.some_new_flag", -7))


def test_several_problems_are_all_listed():
    cfg = with_value("model.dropout", 3.0)
    cfg["task"]["datamodule"]["batch_size"] = -1
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = str(info.value)
    assert "task.datamodule.batch_size=-1" in msg and "model.dropout=3.0" in msg


@settings(max_examples=200, deadline=None)
@given(d_model=st.integers(1, 512), num_heads=st.integers(1, 64))
def test_heads_must_divide_width(d_model, num_heads):
    cfg = base_cfg()
    cfg["model"].update(d_model=d_model, num_heads=num_heads)
    keys = [p.key for p in find_problems(cfg)]
    divides = (d_model // num_heads) * num_heads == d_model  # independent of the module's `%`
    assert ("model.num_heads" in keys) == (not divides)
    if not divides:
        with pytest.raises(ConfigError, match=f"divisor of model.d_model={d_model}"):
            validate_config(cfg)


@pytest.mark.parametrize(
    "d_model,num_heads,ok", [(24, 4, True), (12, 4, False), (30, 2, False), (32, 32, False), (64, 16, True)]
)
def test_rope_needs_even_head_dim(d_model, num_heads, ok):
    cfg = base_cfg()
    cfg["model"].update(d_model=d_model, num_heads=num_heads)
    cfg["model"]["pos_enc"] = {"_target_": "spelab.nn.RotaryEmbedding", "_partial_": True}
    problems = find_problems(cfg)
    assert (not problems) == ok
    if not ok:
        assert problems[0].key == "model.num_heads" and "even head_dim" in str(problems[0])
    # the same sizes are fine without rope
    cfg["model"]["pos_enc"] = {"_target_": "spelab.nn.SineSPE", "num_realizations": 8, "num_sines": 2}
    assert not find_problems(cfg)


@pytest.mark.parametrize("scheme", ["LearnedPositionalEncoding", "SinusoidalPositionalEncoding"])
@pytest.mark.parametrize("max_len,max_length,ok", [(64, 64, True), (128, 64, True), (32, 64, False)])
def test_absolute_table_must_cover_task_length(scheme, max_len, max_length, ok):
    cfg = base_cfg()
    cfg["model"]["pos_enc"] = {"_target_": f"spelab.nn.positional.absolute.{scheme}", "_partial_": True}
    cfg["model"]["max_len"] = max_len
    cfg["task"]["datamodule"]["max_length"] = max_length
    problems = find_problems(cfg)
    assert (not problems) == ok
    if not ok:
        assert problems[0].key == "model.max_len"
        assert f"task.datamodule.max_length={max_length}" in str(problems[0])
    # relative schemes have no table: any length works
    cfg["model"]["pos_enc"] = {"_target_": "spelab.nn.SineSPE", "num_realizations": 8, "num_sines": 2}
    assert not find_problems(cfg)


def test_single_class_classification_refused():
    with pytest.raises(ConfigError, match=r"task\.num_classes=1"):
        validate_config(with_value("task.num_classes", 1))
    lm = with_value("task.num_classes", 0)
    lm["task"]["kind"] = "lm"
    validate_config(lm)


def test_interpolations_resolved_and_unresolvable_ones_skipped():
    cfg = base_cfg()
    cfg["model"]["max_len"] = "${task.datamodule.max_length}"
    cfg["model"]["pos_enc"] = {"_target_": "x.LearnedPositionalEncoding"}
    cfg["tags"] = ["${hydra:runtime.choices.task}"]  # needs a running Hydra app: skipped, not an error
    dc = OmegaConf.create(cfg)
    validate_config(dc)
    dc.task.datamodule.max_length = -3
    with pytest.raises(ConfigError) as info:
        validate_config(dc)
    assert info.value.key == "task.datamodule.max_length"


def test_min_length_above_max_length_refused_anywhere():
    cfg = base_cfg()
    cfg["task"]["datamodule"]["generator"] = {"min_length": 50, "max_length": 40}
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert info.value.key == "task.datamodule.generator.min_length"
    assert "task.datamodule.generator.max_length=40" in str(info.value)


def test_generator_length_beyond_model_table_is_fine():
    # inputs are truncated to task.datamodule.max_length: only that one must fit the table
    cfg = base_cfg()
    cfg["model"]["pos_enc"] = {"_target_": "x.LearnedPositionalEncoding"}
    cfg["task"]["datamodule"]["generator"] = {"min_length": 5, "max_length": 500}
    validate_config(cfg)


# ------------------------------------------------------------------ the real configs must all pass
from pathlib import Path  # noqa: E402

from cfg_utils import ATTENTIONS, POS_ENCS  # noqa: E402

CONF = Path(__file__).resolve().parents[2] / "conf"
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(
    str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml")
)
CELLS = [(a, p) for a in ATTENTIONS for p in POS_ENCS]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("debug", [None, "smoke"])
def test_every_task_config_is_valid(make_cfg, task, debug):
    overrides = [f"task={task}"] + ([f"debug={debug}"] if debug else [])
    assert find_problems(make_cfg(overrides)) == []


@pytest.mark.parametrize("attention,pos_enc", CELLS)
def test_every_grid_cell_is_valid(make_cfg, attention, pos_enc):
    assert find_problems(make_cfg([f"attention={attention}", f"pos_enc={pos_enc}"])) == []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_is_valid(make_cfg, experiment):
    assert find_problems(make_cfg([f"experiment={experiment}"])) == []
