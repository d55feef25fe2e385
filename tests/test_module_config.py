"""The config builds the whole LightningModule (conf/module/*.yaml): every task names its class, nests
the backbone (`model: ${model}`) and the optimizer/scheduler partials; build_module is one instantiate.
These tests fail if the kind table, the `causal` decision or the `prepend_cls` derivation come back
into code, or if a task YAML stops stating its module."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from cfg_utils import CONF, ROOT, compose_config
from spelab.reliability.ckpt_compat import config_differences
from spelab.reliability.module_layout import upgrade_legacy_config
from spelab.tasks.base import SequenceTask
from spelab.train import build_module, check_config

TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(
    str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml")
)


def _facts(cfg) -> SimpleNamespace:
    """What a datamodule of this task would report (build_module reads nothing else from it)."""
    lm = cfg.task.module._target_.endswith("LanguageModelTask")
    return SimpleNamespace(vocab_size=17, num_classes=0 if lm else 3, dual=cfg.task.name == "retrieval", pad_id=0)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_states_its_module_class_backbone_and_partials(task):
    cfg = compose_config([f"task={task}"])
    module = cfg.task.module
    assert OmegaConf.to_container(module)["model"] == "${model}"  # the backbone is the model node itself
    for name in ("optimizer", "scheduler"):
        assert module[name]._partial_ is True and "_target_" in module[name]
    # the plain values users override (task.module.lr ...) are what the partials read
    assert module.optimizer.lr == module.lr and module.optimizer.weight_decay == module.weight_decay
    assert module.scheduler.schedule == module.schedule and module.scheduler.warmup_steps == module.warmup_steps
    lm = module._target_.endswith("LanguageModelTask")
    assert (cfg.task.kind == "lm") == lm
    # causal is stated once, by the config: the model node of LM tasks, nowhere else
    assert bool(cfg.model.get("causal", False)) == lm
    resolved = OmegaConf.to_container(cfg, resolve=True)
    found = [k for k in _keys(resolved) if k.endswith(".causal") and not k.startswith("task.module.model.")]
    assert found == (["model.causal"] if lm else []), found


def _keys(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path
            yield from _keys(v, path)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_module_builds_from_its_config_with_one_instantiate(task):
    cfg = compose_config([f"task={task}", "debug=smoke"])
    dm = _facts(cfg)
    module = build_module(cfg, dm)
    assert isinstance(module, SequenceTask) and type(module).__name__ == cfg.task.module._target_.rsplit(".", 1)[1]
    assert module.model.d_model == cfg.model.d_model and module.model.causal == bool(cfg.model.get("causal"))
    opt = module.configure_optimizers()
    adamw = opt["optimizer"]
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["initial_lr"] == cfg.task.module.lr  # the scheduler scales it from there
    assert adamw.param_groups[0]["weight_decay"] == cfg.task.module.weight_decay
    assert adamw.defaults["eps"] == cfg.task.module.eps
    assert "lr_scheduler" in opt
    # plain values in the hyper-parameters: a checkpoint loads with torch.load(weights_only=True)
    assert not [k for k, v in module.hparams.items() if type(v).__module__.startswith("omegaconf")]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_cls_pooling_comes_with_a_backbone_that_prepends_cls(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    if "pooling" in cfg.task.module:
        assert bool(cfg.model.get("prepend_cls", False)) == (cfg.task.module.pooling == "cls"), experiment


def test_train_holds_no_kind_table_nor_derived_backbone_flags():
    source = (ROOT / "src" / "spelab" / "train.py").read_text()
    for gone in ("TASK_CLASSES", "KINDS", "causal", "prepend_cls", "pooling", "task.kind"):
        assert gone not in source, gone
    body = inspect.getsource(build_module)
    assert body.count("instantiate(") == 1


def test_the_tasks_do_not_know_hydra():
    for path in (ROOT / "src" / "spelab" / "tasks").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (\w+)", path.read_text(), flags=re.M)
        assert not {"hydra", "omegaconf"} & set(imports), path.name


def test_a_task_without_module_target_fails_naming_the_key():
    cfg = compose_config(["debug=smoke", "~task.module._target_"])
    with pytest.raises(ValueError, match=r"task\.module\._target_"):
        check_config(cfg)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["task.module.pooling=max"], r"task\.module\.pooling='max' is not one of \['mean', 'cls'\]"),
        (["task.module.pooling=cls"], r"model\.prepend_cls=true"),
        (["task=music", "model.causal=false"], r"model\.causal=true"),
    ],
)
def test_inconsistent_module_config_fails_naming_the_key(overrides, needle):
    cfg = compose_config([*overrides, "debug=smoke"])
    with pytest.raises(ValueError, match=needle):
        build_module(cfg, _facts(cfg))


def test_cls_pooling_builds_when_the_config_states_both():
    cfg = compose_config(["task.module.pooling=cls", "model.prepend_cls=true", "debug=smoke"])
    module = build_module(cfg, _facts(cfg))
    assert module.model.cls is not None and module.hparams.pooling == "cls"


def _legacy(saved: dict) -> dict:
    """A config as spelab stored it before conf/module/: task.module of plain values, nothing derived."""
    module = saved["task"]["module"]
    for key in ("model", "optimizer", "scheduler"):
        del module[key]
    for key, default in (("betas", [0.9, 0.98]), ("eps", 1e-9), ("min_lr_ratio", 0.0), ("weight_decay_all", False)):
        if module[key] == default:  # left to the class's default then
            del module[key]
    if saved["task"]["kind"] == "classification":
        module.pop("_target_")
    saved["model"].pop("prepend_cls", None)
    return saved


@pytest.mark.parametrize("overrides", [["task=listops"], ["task=music"], ["experiment=lra/listops"]])
def test_a_checkpoint_config_from_before_the_module_config_still_matches(overrides):
    current = OmegaConf.to_container(compose_config(overrides), resolve=True)
    saved = _legacy(OmegaConf.to_container(compose_config(overrides), resolve=True))
    assert config_differences(saved, current)[0] != {}  # without the upgrade it would be refused
    assert config_differences(upgrade_legacy_config(saved, current), current)[0] == {}
    # ... and a real difference is still one
    changed = OmegaConf.to_container(compose_config([*overrides, "task.module.lr=0.5"]), resolve=True)
    blocking = config_differences(upgrade_legacy_config(saved, changed), changed)[0]
    assert "task.module.lr" in blocking


def test_module_files_are_the_only_module_bases():
    assert sorted(p.name for p in (CONF / "module").glob("*.yaml")) == ["classification.yaml", "lm.yaml"]
    for task in TASKS:
        text = (CONF / "task" / f"{task}.yaml").read_text()
        assert re.search(r"^  - /module@task\.module: (classification|lm)$", text, flags=re.M), task
        assert "_target_: spelab.tasks" not in text, task  # stated once, in conf/module/
    assert Path(CONF / "module" / "lm.yaml").read_text().count("LanguageModelTask") == 1


def test_a_changed_value_is_reported_once_not_again_under_its_references():
    from spelab.reliability.module_layout import drop_references

    saved = OmegaConf.to_container(compose_config([]), resolve=True)
    current = OmegaConf.to_container(compose_config(["model.d_model=32", "task.module.lr=0.5"]), resolve=True)
    blocking = config_differences(saved, current)[0]
    assert {"task.module.model.d_model", "task.module.optimizer.lr"} <= set(blocking)  # the references
    assert set(drop_references(blocking)) == {"model.d_model", "task.module.lr"}


def test_a_run_resumes_from_a_checkpoint_written_before_the_module_config(make_cfg, tmp_path):
    """The checkpoint's stored config is rewritten to the old layout; the resume check accepts it."""
    from spelab.reliability.checkpoint_io import atomic_torch_save
    from spelab.reliability.ckpt_compat import CONFIG_KEY
    from spelab.train import train

    overrides = ["debug=smoke", "logger=csv", "trainer.max_steps=6"]
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="fail_at_step"):
        train(make_cfg([*overrides, "fail_at_step=4"], run_dir=run_dir))
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    ckpt[CONFIG_KEY] = _legacy(ckpt[CONFIG_KEY])
    atomic_torch_save(ckpt, last)  # with its checksum, as a real run writes it
    res = train(make_cfg(overrides, run_dir=run_dir))
    assert res["status"] == "done" and res["metrics"]["global_step"] == 6
