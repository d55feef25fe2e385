"""What a run prints besides progress: one handler per log line, no third-party tips or warnings that
tell the user nothing (each filtered at its source by its exact message, never blanket-silenced), the
composed config once as a tree (also saved in the run dir), and what happens on a relaunch."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

# (message regex, why it is noise here)
NOISY_WARNINGS = [
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning's own use of a torch API; not ours to fix"),
    (
        r"The `srun` command is available on your system but is not used",
        "a local run on a SLURM login node; SLURM jobs go through hydra/launcher=slurm",
    ),
    (
        r"Checkpoint directory .* exists and is not empty",
        "run dirs are deterministic on purpose: a relaunch resumes and writes into the same checkpoints/",
    ),
]
NOISY_LOG_LINES = {  # logger name -> substrings of INFO lines to drop
    "lightning.pytorch.utilities.rank_zero": ("litlogger",),
}


class _DropLines(logging.Filter):
    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in str(record.msg) for n in self.needles)


def quiet_output() -> None:
    """Idempotent. Lightning adds its own console handler to the `lightning` logger and still
    propagates to the root one (Hydra's), so every line came twice: keep the root's when there is one."""
    root = logging.getLogger()
    lightning_log = logging.getLogger("lightning")
    if root.handlers:
        for handler in list(lightning_log.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_log.removeHandler(handler)
    for pattern, _why in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, needles in NOISY_LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines(needles))


def drop_unset_wandb_settings(logger: Any) -> None:
    """Lightning passes `anonymous=None` to wandb.init, which W&B answers with "The anonymous setting has
    no effect"; an unset value means nothing, so it is not passed."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


def config_tree(cfg: Any) -> str:
    """The resolved config as a tree of groups (lightning-hydra-template style), as plain text."""
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for key in cfg.keys():
        if key == "hydra":
            continue
        try:
            node = cfg[key]
            text = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else str(node)
        except Exception:  # an unresolvable leaf (outside Hydra): show it unresolved
            text = OmegaConf.to_yaml(cfg._get_node(key)) if OmegaConf.is_config(cfg._get_node(key)) else "?"
        tree.add(str(key)).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    import io

    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    console.print(tree)
    return console.file.getvalue()


def show_config(cfg: Any, output_dir: Path) -> None:
    """Print the config tree once at the start of a run and save it as <run dir>/config_tree.log."""
    text = config_tree(cfg)
    print(text, end="", flush=True)
    try:
        (output_dir / "config_tree.log").write_text(text)
    except OSError:  # the run's own checks report an unwritable dir
        pass


def say_resume(ckpt_path: str | None, last: Path) -> None:
    """One line saying whether this launch resumes, and from which step."""
    if not ckpt_path:
        print(f"[spelab] no checkpoint found at {last}, starting from step 0", flush=True)
        return
    step = "?"
    try:
        import torch

        state = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
        step = state.get("global_step", "?")
    except Exception:  # the resume itself reports an unreadable checkpoint
        pass
    print(f"[spelab] resuming from {ckpt_path} (step {step})", flush=True)
