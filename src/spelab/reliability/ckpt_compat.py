"""Refuse to resume from a checkpoint written by another configuration, listing the differing keys.

Every checkpoint carries the resolved config it was trained with (`ConfigStamp` callback, under the
key `spelab_config`). On resume, `check_checkpoint_compatible(ckpt, cfg)` compares it with the
current config, key by key, and raises CheckpointMismatchError when anything that defines the run
differs.

What may differ (IGNORED_KEYS): keys that control *how long* or *where* a run goes, or how it is
watched, but not what is trained — the step/epoch budget (so a finished run can be extended),
validation/logging cadence, device/precision/strategy (so a run can move from CPU to GPU), paths and
data/cache directories, loggers, callbacks, Hydra's own settings, the run-control switches (resume,
force, ckpt_every_n_steps, test_ckpt, wandb_online, fail_at_step, kernels), tags, sweep name, num_workers and
the evaluation batch size.

What may not: everything else — the model, attention and positional scheme, the task and its data
parameters, the optimiser and schedule, gradient clipping/accumulation, and the **seed**: a
different seed is a different run (it changes shuffling and dropout), so mixing two seeds in one
checkpoint lineage would silently break the "same seed, same metrics" guarantee.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import lightning.pytorch as pl

from spelab.errors import CheckpointMismatchError, DataError
from spelab.plain_config import to_plain
from spelab.reliability.module_layout import drop_references, upgrade_legacy_config

CONFIG_KEY = "spelab_config"
IGNORED_KEYS: tuple[str, ...] = (
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.min_steps",
    "trainer.min_epochs",
    "trainer.max_time",
    "trainer.limit_*",
    "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps",
    "trainer.num_sanity_val_steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.precision",
    "trainer.enable_*",
    "trainer.default_root_dir",
    "trainer.deterministic",
    "trainer.benchmark",
    "trainer.profiler",
    "trainer.plugins*",
    "paths.*",
    "logger.*",
    "callbacks.*",
    "hydra.*",
    "ckpt_every_n_steps",
    "resume",
    "force",
    "test_ckpt",
    "wandb_online",
    "fail_at_step",
    "pause_at_steps",
    "lock_wait",
    "kernels",
    "tags",
    "tags.*",
    "sweep_name",
    "*.num_workers",
    "*.eval_batch_size",
    "*.pin_memory",
    "*data_dir",
    "*cache_dir",
    "*_path",
)
_MISSING = "<missing>"


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{'a.b': leaf}; lists are leaves (compared whole)."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        if not node and prefix:
            out[prefix] = {}
        return out
    return {prefix: node}


def _is_ignored(key: str, ignored: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(key, pat) or key.startswith(pat.rstrip("*") + ".") and pat.endswith(".*") for pat in ignored
    )


def config_differences(
    saved: Mapping, current: Mapping, ignored: Iterable[str] = IGNORED_KEYS
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """(blocking, ignored) differences, each {key: (saved value, current value)}."""
    a, b = flatten(saved), flatten(current)
    blocking, allowed = {}, {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va == vb:
            continue
        (allowed if _is_ignored(key, ignored) else blocking)[key] = (va, vb)
    return blocking, allowed


def _plain(cfg: Any) -> dict:
    # ${hydra:...} outside a Hydra app: compare what resolves
    return dict(to_plain(cfg))


def load_saved_config(ckpt_path: str | os.PathLike) -> dict | None:
    """The config a checkpoint was trained with: its `spelab_config`, else a full config in its
    hyper_parameters, else the run dir's run_meta.json (read it before this start overwrites it)."""
    import torch

    path = Path(ckpt_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        raise DataError(
            path,
            f"unreadable checkpoint ({type(err).__name__}: {err})",
            hint="delete it to start this run afresh, or rerun with force=true",
        ) from err
    if isinstance(ckpt.get(CONFIG_KEY), Mapping):
        return dict(ckpt[CONFIG_KEY])
    hp = ckpt.get("hyper_parameters") or {}
    for cand in (hp.get("cfg"), hp.get("config"), hp):
        if isinstance(cand, Mapping) and "model" in cand and "task" in cand:
            return _plain(cand) if not isinstance(cand, dict) else dict(cand)
    meta = path.parent.parent / "run_meta.json"
    if meta.is_file():
        try:
            return json.loads(meta.read_text()).get("config")
        except (OSError, json.JSONDecodeError):
            return None
    return None


def check_checkpoint_compatible(
    ckpt_path: str | os.PathLike, cfg: Any, ignored: Iterable[str] = IGNORED_KEYS
) -> dict[str, tuple[Any, Any]]:
    """Raise CheckpointMismatchError if `ckpt_path` was trained with another configuration.

    Returns the differences that were allowed (IGNORED_KEYS), for a log line. A checkpoint without a
    recorded config cannot be checked and is accepted (returns {})."""
    saved = load_saved_config(ckpt_path)
    if saved is None:
        return {}
    current = _plain(cfg)
    saved = upgrade_legacy_config(saved, current)  # a checkpoint from before conf/module/*.yaml
    blocking, allowed = (drop_references(d) for d in config_differences(saved, current, ignored))
    if blocking:
        raise CheckpointMismatchError(blocking, path=ckpt_path)
    return allowed


class ConfigStamp(pl.Callback):
    """Store the resolved run config in every checkpoint (`checkpoint['spelab_config']`)."""

    def __init__(self, cfg: Any) -> None:
        self.config = _plain(cfg)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
