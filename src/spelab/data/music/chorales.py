"""task=music: pieces from the music21 corpus (Bach chorales by default), as REMI token sequences.

music21 ships the scores (a PyPI dependency, no download). Each score is written to MIDI in memory,
read with symusic, merged to one track and REMI-tokenised with miditok; the token arrays are cached
on disk, keyed by the parameters. Pieces are split train/val/test with a fixed seed, by piece.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import symusic

from spelab.data.count_progress import CountProgress
from spelab.data.music.cache import Pieces, cached
from spelab.data.music.datamodule import MusicDataModule
from spelab.data.music.remi import PITCH_RANGE, ids_to_score, make_remi_tokenizer, score_to_ids
from spelab.errors import SkippedRecords

log = logging.getLogger(__name__)

# composers whose corpus files parse fast (MusicXML / kern); the ABC collections take minutes
FAST_EXTENSIONS = (".mxl", ".xml", ".musicxml", ".krn")


def corpus_pieces(composers: Sequence[str]) -> list[str]:
    """Sorted corpus paths: 'bach' means the chorales (music21 numbers 371, in 350 distinct files); other names use corpus.getComposer."""
    from music21 import corpus

    names: list[str] = []
    for composer in composers:
        if composer == "bach":
            names += [str(p) for p in corpus.chorales.Iterator(returnType="filename")]
        else:
            paths = [str(p) for p in corpus.getComposer(composer) if str(p).lower().endswith(FAST_EXTENSIONS)]
            if not paths:
                raise ValueError(
                    f"task.datamodule.composers: no MusicXML/kern pieces for {composer!r} in the "
                    f"music21 corpus (try bach, palestrina, monteverdi, mozart, haydn, beethoven)"
                )
            names += paths
    return sorted(set(names))


def corpus_to_score(name: str) -> symusic.Score:
    from music21 import corpus, midi

    stream = corpus.parse(name)
    return symusic.Score.from_midi(midi.translate.music21ObjectToMidiFile(stream).writestr())


def split_names(
    names: Sequence[str], fractions: Sequence[float], seed: int, max_pieces: int | None
) -> dict[str, list[str]]:
    """Shuffle with `seed`, keep `max_pieces`, cut by `fractions` (val and test get at least one)."""
    order = list(np.random.default_rng(seed).permutation(len(names)))
    chosen = [names[i] for i in order[: max_pieces or len(names)]]
    n = len(chosen)
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"task.datamodule.max_pieces={max_pieces} leaves no training piece; use at least 3")
    return {"train": chosen[:n_train], "val": chosen[n_train : n_train + n_val], "test": chosen[n_train + n_val :]}


class ChoralesDataModule(MusicDataModule):
    """REMI token sequences of music21-corpus pieces (a real dataset, not the paper's pop piano)."""

    substitute = True

    def __init__(
        self,
        composers: Sequence[str] = ("bach",),
        max_pieces: int | None = None,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        data_dir: str | None = None,
        pitch_range: Sequence[int] = PITCH_RANGE,
        num_velocities: int = 8,
        positions_per_beat: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not composers:
            raise ValueError("task.datamodule.composers must name at least one composer, e.g. [bach]")
        if len(split_fractions) != 3 or abs(sum(split_fractions) - 1) > 1e-6 or min(split_fractions) <= 0:
            raise ValueError(
                f"task.datamodule.split_fractions must be 3 positive numbers summing to 1, got {list(split_fractions)}"
            )
        if max_pieces is not None and max_pieces < 3:
            raise ValueError(f"task.datamodule.max_pieces must be >= 3 (or null for all), got {max_pieces}")
        self.composers, self.max_pieces = list(composers), max_pieces
        self.split_fractions, self.split_seed, self.data_dir = list(split_fractions), split_seed, data_dir
        self.tokenizer = make_remi_tokenizer(tuple(pitch_range), num_velocities, positions_per_beat)
        self.token_params = {
            "pitch_range": list(pitch_range),
            "num_velocities": num_velocities,
            "positions_per_beat": positions_per_beat,
        }
        inverse = {i: t for t, i in self.tokenizer.vocab.items()}
        self.vocab = [inverse[i] for i in range(len(inverse))]
        self.description = (
            f"music21 corpus ({', '.join(self.composers)}), REMI via miditok, "
            f"{len(self.vocab)} tokens, windows of {self.max_length}"
        )

    def load_pieces(self) -> Pieces:
        params = {
            "composers": self.composers,
            "max_pieces": self.max_pieces,
            "split": self.split_fractions,
            "split_seed": self.split_seed,
            "tokens": self.token_params,
            "version": 1,
        }
        return cached(self.data_dir, "music21", params, self._build)

    def _build(self) -> Pieces:
        names = corpus_pieces(self.composers)
        splits = split_names(names, self.split_fractions, self.split_seed, self.max_pieces)
        skipped = SkippedRecords("music21 corpus")
        pieces: Pieces = {}
        total = sum(len(v) for v in splits.values())
        progress = CountProgress(total, "tokenising music21 pieces", log)
        for split, split_list in splits.items():
            pieces[split] = []
            for name in split_list:
                progress.update()
                try:
                    ids = score_to_ids(self.tokenizer, corpus_to_score(name))
                except Exception as err:  # music21 raises many kinds on odd scores
                    skipped.add(None, f"{type(err).__name__}")
                    log.debug("skipping %s: %s", name, err)
                    continue
                if len(ids) < 2:
                    skipped.add(None, "no notes")
                    continue
                pieces[split].append((name, ids))
        if skipped.count:
            log.warning(skipped.summary(total))
        skipped.check(total)
        return pieces

    def ids_to_score(self, ids):
        return ids_to_score(self.tokenizer, ids)
