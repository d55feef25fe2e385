"""The resume check and the module config (conf/module/*.yaml): old checkpoints, and keys that only
repeat other keys.

`task.module.model` is `${model}` and the optimizer/scheduler partials read `task.module.lr` etc., so one
changed value shows up twice in a resolved config; `drop_references` keeps the key a user sets.

Checkpoints written before the config built the whole module (spelab before conf/module/*.yaml) stored a `task.module` of plain values only: no
`_target_` for classification tasks (train.py chose the class by `task.kind`), no nested `model`,
`optimizer` or `scheduler`, no values left to the classes' defaults, and no `model.prepend_cls` (derived
from `pooling: cls`). `upgrade_legacy_config` fills them in as that code did, so that such a run still
resumes, or is skipped when done, instead of being refused for keys that only moved.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

_TARGETS = {
    "classification": "spelab.tasks.classification.ClassificationTask",
    "lm": "spelab.tasks.language_model.LanguageModelTask",
}
# what the classes used when the config left a value out (betas etc. were not in every task file)
_DEFAULTS = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "weight_decay_all": False,
    "betas": [0.9, 0.98],
    "eps": 1e-9,
    "warmup_steps": 0,
    "schedule": "constant",
    "min_lr_ratio": 0.0,
}
# pure references to values compared elsewhere (`model: ${model}`, the partials' `${..lr}` ...)
_REFERENCES = ("model", "optimizer", "scheduler")


_MIRRORS = (
    ("task.module.model.", "model."),
    ("task.module.optimizer.", "task.module."),
    ("task.module.scheduler.", "task.module."),
)


def drop_references(differences: dict[str, Any]) -> dict[str, Any]:
    """The differences without those that only repeat another one (same key below the referenced node,
    same pair of values)."""
    out = {}
    for key, pair in differences.items():
        for prefix, source in _MIRRORS:
            if key.startswith(prefix) and differences.get(source + key[len(prefix) :]) == pair:
                break
        else:
            out[key] = pair
    return out


def is_legacy(saved: Mapping[str, Any]) -> bool:
    module = (saved.get("task") or {}).get("module") if isinstance(saved.get("task"), Mapping) else None
    return isinstance(module, Mapping) and not any(key in module for key in _REFERENCES)


def upgrade_legacy_config(saved: Mapping[str, Any], current: Mapping[str, Any]) -> Mapping[str, Any]:
    """`saved` in today's layout when it is a legacy config and `current` is not, else `saved` unchanged."""
    if not is_legacy(saved) or is_legacy(current):
        return saved
    out = copy.deepcopy(dict(saved))
    kind = out["task"].get("kind")
    module = out["task"]["module"]
    if kind in _TARGETS:
        module.setdefault("_target_", _TARGETS[kind])
    for key, value in _DEFAULTS.items():
        module.setdefault(key, value)
    if kind == "classification":
        module.setdefault("pooling", "mean")
    if isinstance(out.get("model"), dict):  # derived from pooling then, stated by conf/model now
        out["model"].setdefault("prepend_cls", kind == "classification" and module.get("pooling") == "cls")
    current_module = (current.get("task") or {}).get("module") or {}
    for key in _REFERENCES:
        if key == "model" and isinstance(out.get("model"), dict):
            module["model"] = copy.deepcopy(out["model"])
        elif key in current_module:
            module[key] = copy.deepcopy(current_module[key])
    return out
