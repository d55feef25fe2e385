"""The contract every task's DataModule follows: attributes known after __init__, dict batches.

Subclasses implement `build_split(split)` returning a torch Dataset whose items are dicts with
`input_ids` (1-D long tensor, or 2 x N for dual-sequence tasks) and, for classification, `label`.
"""

from __future__ import annotations

from typing import Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from spelab.data.resumable import ResumableDataLoader

SPLITS = ("train", "val", "test")


def pad_collate(items: Sequence[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad `input_ids` to the longest sequence of the batch; True in `padding_mask` marks padding."""
    seqs = [torch.as_tensor(it["input_ids"], dtype=torch.long) for it in items]
    dual = seqs[0].dim() == 2
    parts = [s for seq in seqs for s in (seq.unbind(0) if dual else (seq,))]
    length = max(int(p.numel()) for p in parts)
    ids = torch.full((len(parts), length), pad_id, dtype=torch.long)
    for i, p in enumerate(parts):
        ids[i, : p.numel()] = p
    mask = torch.ones_like(ids, dtype=torch.bool)
    for i, p in enumerate(parts):
        mask[i, : p.numel()] = False
    if dual:
        ids, mask = ids.view(len(seqs), 2, length), mask.view(len(seqs), 2, length)
    batch = {"input_ids": ids, "padding_mask": mask}
    if "label" in items[0]:
        batch["labels"] = torch.tensor([int(it["label"]) for it in items], dtype=torch.long)
    return batch


class SequenceDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses set the attributes below in __init__ and implement build_split."""

    vocab_size: int
    num_classes: int = 0
    pad_id: int = 0
    max_length: int
    dual: bool = False
    substitute: bool = False
    description: str = ""

    def __init__(
        self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"task.datamodule.batch_size must be a positive integer, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"task.datamodule.num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.datasets: dict[str, Dataset] = {}

    def build_split(self, split: str) -> Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = self.build_split(split)

    def collate(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        return pad_collate(items, self.pad_id)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        # the training loader keeps its in-epoch position in checkpoints: a resume sees the same batches
        return (ResumableDataLoader if shuffle else DataLoader)(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            generator=generator,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def info(self) -> dict:
        """What results.json and the loggers record about the data."""
        return {
            "vocab_size": self.vocab_size,
            "num_classes": self.num_classes,
            "max_length": self.max_length,
            "dual": self.dual,
            "substitute": self.substitute,
            "description": self.description,
        }
