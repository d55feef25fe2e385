"""A composed config as plain dicts and lists, readable outside a Hydra run.

`OmegaConf.to_container(resolve=True)` fails as a whole on one interpolation that needs Hydra's
runtime (`${hydra:...}`) when called from a tool or a test; `to_plain` then resolves leaf by leaf and
turns the leaves that cannot be resolved (or are missing) into None, so checks can skip them.
"""

from __future__ import annotations

from typing import Any


def to_plain(cfg: Any) -> Any:
    """A plain dict/list copy of a DictConfig/ListConfig; anything else is returned as it is."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except Exception:  # e.g. ${hydra:...} outside a Hydra run: resolve leaf by leaf
            return resolve_leaves(cfg)
    return cfg


def resolve_leaves(node: Any) -> Any:
    """Resolve a DictConfig/ListConfig leaf by leaf; a leaf that fails to resolve becomes None."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        out = {}
        for key in node.keys():
            try:
                out[key] = resolve_leaves(node[key]) if not node._get_node(key)._is_missing() else None
            except Exception:
                out[key] = None
        return out
    if isinstance(node, ListConfig):
        out_list = []
        for i in range(len(node)):
            try:
                out_list.append(resolve_leaves(node[i]))
            except Exception:
                out_list.append(None)
        return out_list
    return node
