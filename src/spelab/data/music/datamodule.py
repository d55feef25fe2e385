"""MusicDataModule: the language-model DataModule shared by the music tasks.

Subclasses set `vocab` (token strings, id = index, "PAD..." at 0) in __init__ and implement
`load_pieces()` (split -> [(name, ids)]) and `ids_to_score(ids)` (for generation). Training draws
random windows of `max_length + 1` tokens with transposition; validation and test cut every piece
into consecutive windows; `prefixes(split, length)` gives the first `length + 1` tokens of each
piece for the evaluation beyond the training length.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from spelab.data.base import SequenceDataModule
from spelab.data.music.cache import Pieces
from spelab.data.music.vocab import shift_pitch_token, transposition_table
from spelab.data.music.windows import ChunkWindows, PiecePrefixes, RandomWindows

log = logging.getLogger(__name__)


class MusicDataModule(SequenceDataModule):
    num_classes = 0
    pad_id = 0

    def __init__(
        self,
        max_length: int = 512,
        max_shift: int = 6,
        windows_per_piece: int = 1,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"task.datamodule.max_length must be an integer >= 2, got {max_length!r}")
        if not isinstance(max_shift, int) or not 0 <= max_shift <= 12:
            raise ValueError(f"task.datamodule.max_shift must be an integer in 0..12, got {max_shift!r}")
        if windows_per_piece < 1:
            raise ValueError(f"task.datamodule.windows_per_piece must be >= 1, got {windows_per_piece}")
        self.max_length, self.max_shift, self.windows_per_piece = max_length, max_shift, windows_per_piece
        self._pieces: Pieces | None = None

    # -- to implement ---------------------------------------------------------------------------
    vocab: list[str]

    def load_pieces(self) -> Pieces:  # pragma: no cover - abstract
        raise NotImplementedError

    def ids_to_score(self, ids: Sequence[int]):  # pragma: no cover - abstract
        """Decode ids to a symusic.Score (generation)."""
        raise NotImplementedError

    def shift_token(self, token: str, semitones: int) -> str | None:
        """How one token moves under transposition (default: Pitch_<n> tokens)."""
        return shift_pitch_token(token, semitones)

    # -- shared ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:  # type: ignore[override]
        return len(self.vocab)

    @property
    def pieces(self) -> Pieces:
        if self._pieces is None:
            self._pieces = self.load_pieces()
            sizes = {s: (len(v), int(sum(len(a) for _, a in v))) for s, v in self._pieces.items()}
            log.info("%s: pieces/tokens per split %s", type(self).__name__, sizes)
            for split in ("train", "val", "test"):
                if not self._pieces.get(split):
                    raise ValueError(
                        f"{type(self).__name__}: the {split} split is empty; use more pieces "
                        f"(task.datamodule.max_pieces) or check the data"
                    )
        return self._pieces

    def split_ids(self, split: str) -> list[np.ndarray]:
        return [ids for _, ids in self.pieces[split]]

    def build_split(self, split: str) -> Dataset:
        if split == "train":
            table = transposition_table(self.vocab, self.max_shift, self.shift_token) if self.max_shift else None
            return RandomWindows(self.split_ids(split), self.max_length, table, self.windows_per_piece)
        return ChunkWindows(self.split_ids(split), self.max_length)

    def prefixes(self, split: str, length: int) -> PiecePrefixes:
        """The first `length + 1` tokens of every piece of `split`, untransposed."""
        return PiecePrefixes(self.split_ids(split), length)

    def write_midi(self, ids: Sequence[int], path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ids_to_score(ids).dump_midi(str(path))
        return path

    def info(self) -> dict:
        out = super().info()
        if self._pieces is not None:
            out["pieces"] = {s: len(v) for s, v in self._pieces.items()}
        return out
