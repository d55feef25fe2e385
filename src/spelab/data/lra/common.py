"""Shared DataModule for the byte-valued LRA tasks (text, retrieval, image, pathfinder, pathx)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from spelab.data.base import SPLITS, SequenceDataModule, pad_collate
from spelab.data.lra.bytes import BYTE_VOCAB_SIZE, PAD_ID
from spelab.data.lra.dataset import ByteTokenDataset
from spelab.errors import ConfigError

log = logging.getLogger(__name__)


def check_choice(key: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(key, value, list(allowed))
    return value


def check_positive(key: str, value: int | None, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(key, value, "a positive integer" + (" or null" if allow_none else ""))
    return value


class ByteLRADataModule(SequenceDataModule):
    """Tokens are values 0..255 shifted by one (bytes.py); subclasses implement `load_splits()`.

    `num_train/num_val/num_test` keep the first k examples of a split (null = all), applied after the
    cache, so they never change what is cached.
    """

    vocab_size = BYTE_VOCAB_SIZE
    pad_id = PAD_ID
    sources: tuple[str, ...] = ("official", "offline")

    def __init__(
        self,
        data_dir: str,
        source: str,
        max_length: int,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        num_train: int | None = None,
        num_val: int | None = None,
        num_test: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.source = check_choice("task.datamodule.source", source, self.sources)
        self.max_length = check_positive("task.datamodule.max_length", max_length, allow_none=False)
        self.data_dir = Path(data_dir).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.data_dir / "cache"
        self.limits = {
            "train": check_positive("task.datamodule.num_train", num_train),
            "val": check_positive("task.datamodule.num_val", num_val),
            "test": check_positive("task.datamodule.num_test", num_test),
        }
        self._packed: dict[str, dict[str, torch.Tensor]] | None = None

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        """{split: pack(...)} for train/val/test, cached by the subclass."""
        raise NotImplementedError

    def build_split(self, split: str) -> ByteTokenDataset:
        if self._packed is None:
            self._packed = self.load_splits()
            log.info("%s: %s", type(self).__name__, self.description)
        packed = self._packed[split]
        k = self.limits[split]
        if k is not None:
            packed = {name: t[:k] for name, t in packed.items()}
        return ByteTokenDataset(packed)

    def prepare_data(self) -> None:
        """Read/generate and cache every split once (the cache makes setup() cheap afterwards)."""
        if self._packed is None:
            self._packed = self.load_splits()

    def collate(self, items):
        # id 0 is never a real token here, so the mask is exact even inside a dual pair whose
        # documents have different lengths (pad_collate's mask only knows the pair's common length).
        batch = pad_collate(items, self.pad_id)
        batch["padding_mask"] = batch["input_ids"] == self.pad_id
        return batch

    def info(self) -> dict:
        return {**super().info(), "source": self.source}


__all__ = ["ByteLRADataModule", "SPLITS", "check_choice", "check_positive"]
