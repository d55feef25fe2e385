"""Which attention x pos_enc (x task) pairs can work, read from the classes the config names.

Each positional scheme declares it beside its code: `backends` (the conf/attention options that take
it; absent or None: all) and, for schemes that need a 2-D grid, `tasks`. Each backend class carries
`name`, its conf/attention option. An impossible pair raises `UnsupportedPairError` before any work;
a sweep records the cell as `status: unsupported` and goes on.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterator, Mapping

from spelab.errors import ConfigError


class UnsupportedPairError(ConfigError):
    """attention x pos_enc (or pos_enc x task) that cannot work; a grid cell records it as unsupported."""


def _target_class(node: Any) -> type | None:
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str) or "." not in target:
        return None
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _get(cfg: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(cfg, Mapping) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def pair_problems(cfg: Mapping) -> Iterator[UnsupportedPairError]:
    """The impossible pairs in a (plain or DictConfig) config: none, or one per broken rule."""
    scheme = _target_class(_get(cfg, "model", "pos_enc"))
    backend = _target_class(_get(cfg, "model", "attention"))
    if scheme is None:
        return
    label = f"{scheme.__name__} ({_get(cfg, 'model', 'pos_enc', '_target_')})"
    backends = getattr(scheme, "backends", None)
    name = getattr(backend, "name", None)
    if backends is not None and name is not None and name not in backends:
        yield UnsupportedPairError(
            "attention",
            name,
            [f"attention={b}" for b in backends],
            reason=f"pos_enc {label} is a logit bias on the attention matrix, which only these backends "
            f"form; attention={name} never builds it",
        )
    tasks = getattr(scheme, "tasks", None)
    task = _get(cfg, "task", "name")
    if tasks and task is not None and task not in tasks:
        yield UnsupportedPairError(
            "task",
            task,
            [f"task={t}" for t in tasks],
            reason=f"pos_enc {label} rotates by (row, column) of a square image; task={task} is a 1-D "
            f"sequence with no 2-D grid",
        )


def check_pair(cfg: Mapping) -> None:
    """Raise the first impossible pair (UnsupportedPairError)."""
    for problem in pair_problems(cfg):
        raise problem
