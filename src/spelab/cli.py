"""`key=value` command lines over a dataclass of defaults (spelab.evaluate, spelab.generate)."""

from __future__ import annotations

import logging
import sys
from typing import Sequence, TypeVar

T = TypeVar("T")


def parse_dotlist(schema: type[T], argv: Sequence[str] | None, prog: str) -> T:
    """Merge OmegaConf dotlist arguments into `schema`'s defaults; a bad key or value exits with the
    allowed keys named. Also sets up plain INFO logging for the command."""
    from omegaconf import OmegaConf

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
    except Exception as err:
        allowed = ", ".join(schema.__dataclass_fields__)
        raise SystemExit(f"{prog}: bad arguments {args}: {err}\nallowed keys: {allowed}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return schema(**OmegaConf.to_container(cfg))


class ToolError(Exception):
    """A wrong argument to a tool (path, kind of checkpoint): printed as one line, exit status 1."""


LM_TASKS = "task=music, pop_piano or groove"


def check_lm_checkpoint(path: object, prog: str) -> None:
    """`path` is a checkpoint file of a language-model run written by run.py, or ToolError says what
    it is instead (before any data or model is loaded)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    ckpt = Path(str(path))
    if not ckpt.is_file():
        where = "is a directory; pass its checkpoints/best.ckpt" if ckpt.is_dir() else "does not exist"
        raise ToolError(f"ckpt={ckpt} {where} (a run's checkpoints are <run dir>/checkpoints/best.ckpt and last.ckpt)")
    run_cfg = next(
        (p / ".hydra" / "config.yaml" for p in ckpt.resolve().parents if (p / ".hydra" / "config.yaml").is_file()), None
    )
    if run_cfg is None:
        raise ToolError(
            f"ckpt={ckpt}: no .hydra/config.yaml in a directory above it; {prog} needs a "
            f"checkpoint inside the run dir that run.py wrote"
        )
    task = OmegaConf.load(run_cfg).get("task") or {}
    if task.get("kind") != "lm":
        raise ToolError(
            f"ckpt={ckpt} is a checkpoint of task {task.get('name')!r} (kind "
            f"{task.get('kind')!r}); {prog} needs a language-model run ({LM_TASKS})"
        )


def run_tool(fn, schema: type[T], argv: Sequence[str] | None, prog: str, need_ckpt: bool = True):
    """Parse `argv` into `schema`, check its checkpoint(s), then call fn(config). A wrong path or a
    checkpoint of another kind of task ends with one line (exit status 1), not a traceback."""
    import os

    from spelab.errors import SpelabError

    cfg = parse_dotlist(schema, argv, prog)
    try:
        ckpts = getattr(cfg, "ckpt", None)
        ckpts = ckpts if isinstance(ckpts, (list, tuple)) else [ckpts] if ckpts else []
        if need_ckpt and not ckpts and not getattr(cfg, "sweep_dir", None):
            raise ToolError("give ckpt=PATH (<run dir>/checkpoints/best.ckpt of a trained music run)")
        for ckpt in ckpts:
            check_lm_checkpoint(ckpt, prog)
        return fn(cfg)
    except (ToolError, SpelabError, FileNotFoundError) as err:
        if os.environ.get("SPELAB_TRACEBACK") == "1":
            raise
        raise SystemExit(f"{prog}: error: {err}") from None
