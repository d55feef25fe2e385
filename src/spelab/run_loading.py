"""Loading a trained run for the tools (spelab.evaluate, spelab.generate): the run's composed config and
its language model rebuilt from a checkpoint. The tasks themselves know nothing of Hydra; this does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from spelab.tasks.language_model import LanguageModelTask

# hyper-parameters of a LanguageModelTask checkpoint that shape the module (the rest are optimiser values)
_MODULE_KEYS = ("vocab_size", "d_model", "pad_id", "tie_embeddings")


def find_run_config(ckpt: str | os.PathLike) -> tuple[Any, Path | None]:
    """The composed config of the run that wrote `ckpt` (`<run>/.hydra/config.yaml`) and that run dir,
    or (None, None)."""
    from omegaconf import OmegaConf

    for parent in Path(ckpt).resolve().parents:
        candidate = parent / ".hydra" / "config.yaml"
        if candidate.is_file():
            return OmegaConf.load(candidate), parent
    return None, None


def _backbone_config(ckpt: str, hparams: dict) -> dict:
    """The backbone's config: in the hyper-parameters of old checkpoints of a module built from a config
    dict, else the run's `task.module.model` (or `model`, in runs from before the module config)."""
    from omegaconf import OmegaConf

    if isinstance(hparams.get("model"), dict):
        return {**hparams["model"], "causal": True}  # such modules forced causal
    cfg, _ = find_run_config(ckpt)
    if cfg is None:
        raise ValueError(
            f"{ckpt}: the checkpoint has no model config and no .hydra/config.yaml was found above it; "
            f"cannot rebuild the model"
        )
    node = OmegaConf.select(cfg, "task.module.model", default=None)
    return OmegaConf.to_container(node if node is not None else cfg.model, resolve=True)


def load_language_model(ckpt: str, map_location: str | torch.device = "cpu") -> LanguageModelTask:
    """A LanguageModelTask (eval mode) from a Lightning checkpoint of a language-model run."""
    from hydra.utils import instantiate

    from spelab.errors import MissingDataError

    if not Path(ckpt).is_file():
        raise MissingDataError(
            ckpt,
            "checkpoint not found",
            hint="pass ckpt=<run dir>/checkpoints/best.ckpt (or last.ckpt) of a trained run",
        )
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    hparams = dict(state.get("hyper_parameters", {}))
    model = instantiate(_backbone_config(ckpt, hparams), vocab_size=hparams["vocab_size"])
    task = LanguageModelTask(model, **{k: hparams[k] for k in _MODULE_KEYS if k in hparams})
    task.load_state_dict(state["state_dict"])
    return task.to(map_location).eval()
