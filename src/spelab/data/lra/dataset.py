"""The Dataset every byte-valued LRA task returns: stored values 0..255, served as ids 1..256."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from spelab.data.lra.bytes import PAD_ID


def pack(sequences: Sequence[np.ndarray], labels: Sequence[int], dual: bool = False) -> dict[str, torch.Tensor]:
    """Pack variable-length uint8 sequences (or pairs of them when `dual`) into padded tensors.

    Returns {"values": uint8 (M, L) or (M, 2, L), "lengths": (M,) or (M, 2), "labels": (M,)}.
    """
    parts = [p for s in sequences for p in (s if dual else (s,))]
    width = max((len(p) for p in parts), default=1) or 1
    values = np.zeros((len(parts), width), dtype=np.uint8)
    lengths = np.zeros(len(parts), dtype=np.int64)
    for i, p in enumerate(parts):
        values[i, : len(p)] = p
        lengths[i] = len(p)
    shape = (len(sequences), 2) if dual else (len(sequences),)
    return {
        "values": torch.from_numpy(values.reshape(*shape, width)),
        "lengths": torch.from_numpy(lengths.reshape(shape)),
        "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64)),
    }


class ByteTokenDataset(Dataset):
    """Items {input_ids: (N,) or (2, N) long ids 1..256 (0 = pad), label: int} from `pack`'s tensors."""

    def __init__(self, packed: dict[str, torch.Tensor]) -> None:
        self.values, self.lengths, self.labels = packed["values"], packed["lengths"], packed["labels"]
        if not (len(self.values) == len(self.lengths) == len(self.labels)):
            raise ValueError("values, lengths and labels must have the same number of examples")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        n = int(self.lengths[i].max())
        ids = self.values[i, ..., :n].long() + 1
        if ids.dim() == 2:  # dual: zero the shorter document's tail back to padding
            for j in range(2):
                ids[j, int(self.lengths[i, j]) :] = PAD_ID
        return {"input_ids": ids, "label": int(self.labels[i])}


def flatten(parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{split: packed} -> {"split/name": tensor}: one flat dict for the cache file."""
    return {f"{split}/{name}": t for split, packed in parts.items() for name, t in packed.items()}


def unflatten(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of `flatten`."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        split, name = key.split("/")
        out.setdefault(split, {})[name] = value
    return out
