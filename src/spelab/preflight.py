"""Check a `run.py` command line before anything happens (no run dir, no W&B run, no data work).

`preflight(argv, conf_dir)` composes the config the way Hydra will (about a second, without torch),
then fails with one line for: an unknown key (with the nearest valid names), a `+key=value` that the
`_target_` constructor it lands in does not accept, or an invalid value or combination
(spelab.validation). `dry_run=true` prints the run dir and stops here, so it creates nothing.
Multirun and Hydra's own flags (`-m`, `--cfg`, ...) are left to Hydra.
"""

from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from spelab.errors import ConfigError, SpelabError


class UnknownKeyError(SpelabError, KeyError):
    """A command-line key that the composed config (or the constructor it reaches) does not have."""

    def __init__(self, key: str, suggestions: Sequence[str], where: str = "the config") -> None:
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        msg = f"Unknown key {key!r}: not in {where}{hint} (`python run.py --cfg job` lists every key)"
        super().__init__(msg, key, list(suggestions), where)
        self.key, self.suggestions = key, list(suggestions)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DryRun(Exception):
    """Raised by preflight for dry_run=true; carries the run dir it would use."""


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a mapping, depth first (lists are leaves)."""
    from omegaconf import DictConfig

    if isinstance(node, (dict, DictConfig)):
        for key in node.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            try:
                child = node._get_node(key) if isinstance(node, DictConfig) else node[key]
            except Exception:
                continue
            if isinstance(child, (dict, DictConfig)):
                yield from dotted_keys(child, path)


def suggest(key: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Nearest valid names for `key`: first siblings/full paths by spelling, then keys with a close
    last component anywhere (so `batch_size=8` finds `task.datamodule.batch_size`)."""
    out = difflib.get_close_matches(key, candidates, n=n, cutoff=0.75)
    if out:
        return out
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, list[str]] = {}
    for c in candidates:
        by_leaf.setdefault(c.rsplit(".", 1)[-1], []).append(c)
    for name in difflib.get_close_matches(leaf, list(by_leaf), n=n, cutoff=0.6):
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        same_parent = [c for c in by_leaf[name] if c.rsplit(".", 1)[0] == parent]
        out += same_parent or by_leaf[name][:2]
    return list(dict.fromkeys(out))[:n]


def _compose(conf_dir: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from spelab.tracking import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name="run"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _parse(argv: Sequence[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(argv))


def _unknown_key(err: Exception, argv: list[str], conf_dir: str) -> UnknownKeyError | None:
    """Hydra's 'Could not override X' (or a missing key below a struct node) as an UnknownKeyError
    with suggestions from the config composed without that override."""
    import re

    msg = str(err)
    m = re.search(r"Could not override '([^']+)'", msg) or re.search(r"full_key: (\S+)", msg)
    if not m or "is not in struct" not in msg and "Could not override" not in msg:
        return None
    key = m.group(1)
    rest = [a for a in argv if a.split("=", 1)[0].lstrip("+~") != key]
    try:
        base = _compose(conf_dir, rest)
    except Exception:  # another override is broken too: suggest from the defaults
        try:
            base = _compose(conf_dir, [])
        except Exception:
            return UnknownKeyError(key, [])
    keys = [k for k in dotted_keys(base) if not k.startswith("hydra.")]
    return UnknownKeyError(key, suggest(key, keys))


def _constructor_params(target: str) -> tuple[list[str], bool] | None:
    """(parameter names, accepts **kwargs) of a `_target_` class or function, or None if unknown."""
    try:
        import hydra.utils

        obj = hydra.utils.get_object(target)
        sig = inspect.signature(obj)
    except Exception:
        return None
    params = [p for p in sig.parameters.values() if p.name != "self"]
    return [p.name for p in params], any(p.kind is p.VAR_KEYWORD for p in params)


def check_added_keys(cfg: Any, parsed: list) -> None:
    """A `+key=value` that lands in a node built by `_target_` must be an argument of that constructor."""
    from omegaconf import OmegaConf

    for ov in parsed:
        if not (ov.is_add() or ov.is_force_add()) or ov.is_hydra_override():
            continue
        key = ov.key_or_group
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the nearest enclosing node with a _target_
            parent = ".".join(parts[:cut])
            node = OmegaConf.select(cfg, parent, throw_on_missing=False)
            if node is not None and OmegaConf.is_dict(node) and "_target_" in node:
                if cut != len(parts) - 1:
                    break  # a key deeper inside an argument: the argument's own business
                found = _constructor_params(str(node._target_))
                if found is None or found[1] or parts[-1] in found[0]:
                    break
                siblings = [f"{parent}.{n}" for n in found[0]]
                raise UnknownKeyError(key, suggest(key, siblings), where=f"the arguments of {node._target_}")


def preflight(argv: Sequence[str], conf_dir: str | os.PathLike) -> Any | None:
    """Compose and check `argv`; returns the composed config, or None when Hydra should handle it.

    Raises UnknownKeyError / ConfigError / SpelabError (one-line messages), DryRun for dry_run=true,
    and Hydra's ConfigCompositionException for other composition errors (its message is clear)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    argv = list(argv)
    if any(a.startswith("-") for a in argv):  # -m, --cfg, --help, -cn ...: Hydra's flags, Hydra's job
        return None
    conf_dir = str(Path(conf_dir).resolve())
    try:
        parsed = _parse(argv)
    except Exception:  # a syntax error: Hydra's message points at the character
        return None
    if any(ov.is_sweep_override() for ov in parsed):
        return None
    try:
        cfg = _compose(conf_dir, argv)
    except ConfigCompositionException as err:
        unknown = _unknown_key(err, argv, conf_dir)
        if unknown is not None:
            raise unknown from None
        # Hydra's own message names the group and its options; the search path after it is noise
        raise ConfigCompositionException(str(err).split("\nConfig search path:")[0].rstrip()) from None
    HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.choices...} resolves while checking
    if cfg.get("dry_run"):
        raise DryRun(os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir"))))
    check_added_keys(cfg, parsed)
    from spelab.validation import validate_config

    validate_config(cfg)
    kind = OmegaConf.select(cfg, "task.kind", default=None)
    if kind not in ("classification", "lm"):
        raise ConfigError("task.kind", kind, ["classification", "lm"])
    return cfg
