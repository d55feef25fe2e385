"""Datasets over tokenised pieces: random training windows, fixed evaluation windows, piece prefixes.

A window holds `length + 1` tokens: the language model reads the first `length` and predicts the
last `length` (docs/layout.md: the module predicts token t+1 from tokens <= t).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from spelab.data.music.vocab import random_transpose


class RandomWindows(Dataset):
    """Training: `windows_per_piece` random windows of each piece per epoch (starting at one of `starts`
    when given), randomly transposed."""

    def __init__(
        self,
        pieces: Sequence[np.ndarray],
        length: int,
        table: np.ndarray | None = None,
        windows_per_piece: int = 1,
        starts: Sequence[np.ndarray] | None = None,
    ) -> None:
        if length <= 0:
            raise ValueError(f"RandomWindows: length must be positive, got {length}")
        keep = [i for i, p in enumerate(pieces) if len(p) >= 2]
        self.pieces = [pieces[i] for i in keep]
        # optional allowed window starts per piece (e.g. bar starts); none left means any start
        self.starts = [np.asarray(starts[i]) for i in keep] if starts is not None else None
        self.length, self.table, self.windows_per_piece = length, table, windows_per_piece

    def __len__(self) -> int:
        return len(self.pieces) * self.windows_per_piece

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        piece = self.pieces[index % len(self.pieces)]
        # draw from torch's generator so that seed_everything and worker seeding apply
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        rng = np.random.default_rng(seed)
        span = self.length + 1
        last = max(len(piece) - span, 0)
        allowed = self.starts[index % len(self.pieces)] if self.starts is not None else None
        allowed = allowed[allowed <= last] if allowed is not None else None
        if allowed is not None and allowed.size:
            start = int(rng.choice(allowed))
        else:
            start = int(rng.integers(0, last + 1))
        window = piece[start : start + span]
        if self.table is not None:
            window = random_transpose(window, self.table, rng)
        return {"input_ids": torch.as_tensor(window, dtype=torch.long)}


class ChunkWindows(Dataset):
    """Validation/test: each piece cut into consecutive windows of `length + 1` tokens (overlap 1)."""

    def __init__(self, pieces: Sequence[np.ndarray], length: int) -> None:
        self.items: list[np.ndarray] = []
        for piece in pieces:
            for start in range(0, max(len(piece) - 1, 1), length):
                chunk = piece[start : start + length + 1]
                if len(chunk) >= 2:
                    self.items.append(chunk)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.as_tensor(self.items[index], dtype=torch.long)}


class PiecePrefixes(Dataset):
    """Extrapolation evaluation: the first `length + 1` tokens of every piece (shorter pieces whole)."""

    def __init__(self, pieces: Sequence[np.ndarray], length: int) -> None:
        self.items = [p[: length + 1] for p in pieces if len(p) >= 2]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.as_tensor(self.items[index], dtype=torch.long)}
