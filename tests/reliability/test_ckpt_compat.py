"""A checkpoint from another configuration is refused with the differing keys listed."""

from __future__ import annotations

import copy
import json

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from .rel_helpers import TinyModule, tiny_loader
from spelab.errors import CheckpointMismatchError, DataError
from spelab.reliability.ckpt_compat import (
    CONFIG_KEY,
    ConfigStamp,
    check_checkpoint_compatible,
    config_differences,
    flatten,
)

CFG = {
    "seed": 1,
    "model": {"d_model": 32, "num_heads": 4, "pos_enc": {"_target_": "x.SineSPE", "num_realizations": 16}},
    "task": {
        "name": "listops",
        "datamodule": {"batch_size": 8, "num_workers": 0, "data_dir": "/a"},
        "module": {"lr": 0.001},
    },
    "trainer": {"max_steps": 100, "gradient_clip_val": 1.0, "accelerator": "cpu"},
    "paths": {"output_dir": "/runs/a"},
    "ckpt_every_n_steps": 10,
    "resume": True,
}


def changed(**edits):
    cfg = copy.deepcopy(CFG)
    for dotted, value in edits.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def save(tmp_path, cfg, name="last.ckpt", key=CONFIG_KEY):
    path = tmp_path / name
    torch.save({"state_dict": {}, key: cfg}, path)
    return path


def test_flatten_round_trips():
    flat = flatten(CFG)
    assert flat["model.pos_enc.num_realizations"] == 16 and flat["seed"] == 1
    rebuilt: dict = {}
    for dotted, value in flat.items():
        node = rebuilt
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    assert rebuilt == CFG


def test_same_config_accepted(tmp_path):
    assert check_checkpoint_compatible(save(tmp_path, CFG), OmegaConf.create(CFG)) == {}


def test_run_control_keys_may_differ(tmp_path):
    cur = changed(
        trainer__max_steps=500,
        paths__output_dir="/elsewhere",
        ckpt_every_n_steps=3,
        task__datamodule__num_workers=4,
        task__datamodule__data_dir="/b",
        trainer__accelerator="gpu",
    )
    allowed = check_checkpoint_compatible(save(tmp_path, CFG), cur)
    assert set(allowed) == {
        "trainer.max_steps",
        "paths.output_dir",
        "ckpt_every_n_steps",
        "task.datamodule.num_workers",
        "task.datamodule.data_dir",
        "trainer.accelerator",
    }
    assert allowed["trainer.max_steps"] == (100, 500)


@pytest.mark.parametrize(
    "edits,key",
    [
        ({"model__d_model": 64}, "model.d_model"),
        ({"model__pos_enc__num_realizations": 8}, "model.pos_enc.num_realizations"),
        ({"task__module__lr": 0.01}, "task.module.lr"),
        ({"task__datamodule__batch_size": 16}, "task.datamodule.batch_size"),
        ({"seed": 2}, "seed"),  # a different seed is a different run
        ({"trainer__gradient_clip_val": 0.5}, "trainer.gradient_clip_val"),
    ],
)
def test_other_configuration_refused_with_keys_listed(tmp_path, edits, key):
    ckpt = save(tmp_path, CFG)
    cur = changed(**edits, trainer__max_steps=999)  # plus an allowed difference, which is not listed
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_compatible(ckpt, cur)
    err = info.value
    assert list(err.differences) == [key]
    assert key in str(err) and str(ckpt) in str(err) and "trainer.max_steps" not in str(err)


def test_added_and_removed_keys_are_differences():
    cur = changed()
    cur["model"]["pos_enc"]["num_sines"] = 4
    del cur["model"]["num_heads"]
    blocking, _ = config_differences(CFG, cur)
    assert blocking == {"model.num_heads": (4, "<missing>"), "model.pos_enc.num_sines": ("<missing>", 4)}


def test_hyper_parameters_and_run_dir_fallbacks(tmp_path):
    path = tmp_path / "hp.ckpt"
    torch.save({"hyper_parameters": {"cfg": CFG}}, path)
    with pytest.raises(CheckpointMismatchError, match="model.d_model"):
        check_checkpoint_compatible(path, changed(model__d_model=8))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run_meta.json").write_text(json.dumps({"config": CFG}))
    bare = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}}, bare)
    with pytest.raises(CheckpointMismatchError, match="seed"):
        check_checkpoint_compatible(bare, changed(seed=5))


def test_checkpoint_without_config_is_accepted(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {}}, path)
    assert check_checkpoint_compatible(path, CFG) == {}


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(DataError) as info:
        check_checkpoint_compatible(path, CFG)
    assert str(path) in str(info.value) and "force=true" in str(info.value)


def test_config_stamp_callback_writes_config_into_lightning_checkpoints(tmp_path, trainer_kwargs):
    cfg = OmegaConf.create({**CFG, "model": {**CFG["model"], "max_len": "${task.datamodule.batch_size}"}})
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True)
    trainer = pl.Trainer(max_steps=2, callbacks=[ConfigStamp(cfg), ckpt], **trainer_kwargs)
    trainer.fit(TinyModule(), tiny_loader())
    stored = torch.load(tmp_path / "last.ckpt", weights_only=False)[CONFIG_KEY]
    assert stored["model"]["max_len"] == 8  # resolved
    check_checkpoint_compatible(tmp_path / "last.ckpt", cfg)
    with pytest.raises(CheckpointMismatchError):
        check_checkpoint_compatible(tmp_path / "last.ckpt", changed(model__num_heads=2))
