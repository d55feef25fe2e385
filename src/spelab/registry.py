"""The options of conf/'s groups, read from their YAML files: the one list of names.

An option is a file `<conf dir>/<group>/<name>.yaml`. Besides Hydra's `# @package` line, its header
may carry spelab's facts about the option, in Hydra's own header form `# @key value` (Hydra reads
the header and ignores keys it does not know, so they never reach `instantiate`):

    # @order 40               display order in the group (reports, test ids); without it: after, by name
    # @paper true             one of the SPE paper's options (its 3 x 6 grid)
    # @head_dim_multiple 2    pos_enc: head_dim = d_model / num_heads must be a multiple of this
    # @absolute_table true    pos_enc: a table of model.max_len positions, the task's length must fit

The conf dirs are Hydra's file search path when a config has been composed in this process (a run,
`compose`, preflight), so options added through `hydra.searchpath` or `--config-dir` count too; else
the repository's `conf/`. Hydra is imported only when it is already in use.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_HEADER = re.compile(r"^\s*#\s*@(\w+)\s+(\S+)\s*$")


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    path: Path
    target: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> float:
        value = self.meta.get("order")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.inf


def read_header(text: str) -> dict[str, Any]:
    """The `# @key value` lines at the top of a YAML file (Hydra's header rule), values as YAML scalars."""
    import yaml  # PyYAML, with omegaconf; imported here so that importing this module needs nothing

    meta: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _HEADER.match(line)
        if m is None:
            break
        key, value = m.groups()
        if key != "package":
            meta[key] = yaml.safe_load(value)
    return meta


def _read_option(group: str, path: Path) -> Option:
    import yaml

    text = path.read_text()
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError:
        body = None
    target = body.get("_target_") if isinstance(body, dict) else None
    return Option(group, path.stem, path, target if isinstance(target, str) else None, read_header(text))


def conf_dirs() -> tuple[Path, ...]:
    """The file dirs of Hydra's search path for the config composed last in this process, else conf/."""
    if "hydra" in sys.modules:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            sources = HydraConfig.get().runtime.get("config_sources") or []
            dirs = tuple(Path(s.path) for s in sources if s.get("schema") == "file" and Path(s.path).is_dir())
            if dirs:
                return dirs
    return (CONF_DIR,)


@functools.lru_cache(maxsize=32)
def _options(group: str, dirs: tuple[Path, ...]) -> tuple[Option, ...]:
    found: dict[str, Option] = {}
    for d in dirs:  # the first dir holding a name wins, as in Hydra's search path
        for path in sorted((d / group).glob("*.yaml")):
            found.setdefault(path.stem, _read_option(group, path))
    return tuple(sorted(found.values(), key=lambda o: (o.order, o.name)))


def options(group: str, dirs: tuple[Path, ...] | None = None) -> tuple[Option, ...]:
    """Every option of a conf group, in display order (`# @order`, then by name)."""
    return _options(group, tuple(dirs) if dirs is not None else conf_dirs())


def names(group: str, *, paper: bool | None = None, dirs: tuple[Path, ...] | None = None) -> tuple[str, ...]:
    """The option names of a group in display order; paper=True/False: only the paper's / the others."""
    return tuple(o.name for o in options(group, dirs) if paper is None or bool(o.meta.get("paper")) == paper)


def by_target(group: str, target: Any, dirs: tuple[Path, ...] | None = None) -> Option | None:
    """The option whose `_target_` is `target` (or, failing that, names the same class)."""
    if not isinstance(target, str) or not target:
        return None
    opts = options(group, dirs)
    for o in opts:
        if o.target == target:
            return o
    cls = target.rsplit(".", 1)[-1]
    return next((o for o in opts if o.target and o.target.rsplit(".", 1)[-1] == cls), None)
