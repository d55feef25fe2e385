"""task=pop_piano: the SPE paper's REMI pop-piano data (Pop1K7-style event pickles).

Expects the extracted Zenodo archive (record 4782721, `remi_dataset.tar.gz`): `<data_dir>/*.pkl`, each
holding `(bar_pos: list[int], events: list[{'name', 'value'}])`. The split lists are the paper's
`{train,val,test}_pieces.pkl` (1572 / 87 / 88 pieces; lists of file names or ids), looked for in
`split_dir` (default: data_dir); without them the pieces are split by a fixed seed.

The vocabulary is rebuilt from the published spec (docs/data.md, "Pop piano"): Bar, EOS, Beat_0..15,
133 chords, Note_Pitch_22..107, Note_Velocity_40..86 (step 2), Note_Duration_0..1920 (step 120) and
Tempo_32..224 (step 3). The paper's vocabulary keeps only the 54 tempo values present in the data
(332 events); the rebuilt one holds all 65 (343 events), a superset. `vocab_file=` reads the paper's
`remi_vocab.pkl` instead. Ids are the events in sorted order (as the paper's), shifted by one so
that padding is 0. Training windows start on a bar (the paper takes 48-bar windows), transposed by
-6..+6 semitones with pitches kept in 22..107 and chords moved with them.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import symusic
from torch.utils.data import Dataset

from spelab.data.music.cache import Pieces, cached
from spelab.data.music.datamodule import MusicDataModule
from spelab.data.music.vocab import shift_pitch_token, transposition_table
from spelab.data.music.windows import RandomWindows
from spelab.errors import DataError, MissingDataError, SkippedRecords

log = logging.getLogger(__name__)

HINT = (
    "download https://zenodo.org/record/4782721/files/remi_dataset.tar.gz, extract it and pass "
    "task.datamodule.data_dir=<dir of the .pkl files> (and split_dir=<dir of {train,val,test}_pieces.pkl> "
    "from the SPE repository's experiments/pop_piano/pickles)"
)
ROOTS = ["A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#"]
QUALITIES = ["+", "/o7", "7", "M", "M7", "m", "m7", "o", "o7", "sus2", "sus4"]
TICKS_PER_BEAT, TICKS_PER_STEP, STEPS_PER_BAR = 480, 120, 16
TEMPOS = list(range(32, 225, 3))


def spec_events() -> list[str]:
    """The REMI pop-piano events, sorted (the paper's id order)."""
    events = ["Bar_None", "EOS_None"] + [f"Beat_{i}" for i in range(STEPS_PER_BAR)]
    events += [f"Chord_{r}_{q}" for r in ROOTS for q in QUALITIES] + ["Chord_N_N"]
    events += [f"Tempo_{t}" for t in TEMPOS]
    events += [f"Note_Pitch_{p}" for p in range(22, 108)]
    events += [f"Note_Velocity_{v}" for v in range(40, 87, 2)]
    events += [f"Note_Duration_{d}" for d in range(0, 1921, 120)]
    return sorted(events)


def load_vocab_file(path: str | Path) -> list[str]:
    """Events of the paper's `remi_vocab.pkl` ((event2idx, idx2event)) in id order."""
    with open(path, "rb") as f:
        event2idx, _ = pickle.load(f)
    return [e for e, _ in sorted(event2idx.items(), key=lambda kv: kv[1])]


def event_string(event: dict) -> str:
    return f"{event['name']}_{event['value']}"


def shift_remi_token(token: str, semitones: int) -> str | None:
    """Note_Pitch_<p> moves by `semitones`; Chord_<root>_<quality> moves its root (cyclically)."""
    if token.startswith("Chord_") and token != "Chord_N_N":
        _, root, quality = token.split("_", 2)
        return f"Chord_{ROOTS[(ROOTS.index(root) + semitones) % 12]}_{quality}"
    return shift_pitch_token(token, semitones, prefixes=("Note_Pitch_",))


def _load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    ) as err:
        raise DataError(path, f"not a readable pickle ({type(err).__name__}: {err})", hint=HINT) from err


def read_piece(path: Path, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, bar starts) of one pickle; tempos snap to the nearest vocabulary tempo."""
    tempos = np.array([int(t.split("_")[1]) for t in index if t.startswith("Tempo_")])
    try:
        bar_pos, events = _load_pickle(path)
        ids = []
        for event in events:
            token = event_string(event)
            if token not in index and event["name"] == "Tempo" and len(tempos):
                token = f"Tempo_{tempos[np.abs(tempos - float(event['value'])).argmin()]}"
            if token not in index:
                raise DataError(path, f"event {token!r} is not in the REMI vocabulary")
            ids.append(index[token])
        return np.asarray(ids, dtype=np.int32), np.asarray(bar_pos, dtype=np.int64)
    except DataError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
        raise DataError(
            path, f"not a REMI event pickle of (bar positions, events): {type(err).__name__}: {err}", hint=HINT
        ) from err


def read_split_list(path: Path) -> list[str]:
    names = _load_pickle(path)
    if not isinstance(names, (list, tuple)):
        raise DataError(path, f"a split list must be a list of piece names, got {type(names).__name__}", hint=HINT)
    return [str(n) if str(n).endswith(".pkl") else f"{n}.pkl" for n in names]


class PopPianoDataModule(MusicDataModule):
    """The paper's pop-piano REMI events (Zenodo 4782721), 2048-token windows by default."""

    def __init__(
        self,
        data_dir: str | None = None,
        split_dir: str | None = None,
        vocab_file: str | None = None,
        cache_dir: str | None = None,
        split_seed: int = 0,
        max_length: int = 2048,
        **kwargs,
    ) -> None:
        super().__init__(max_length=max_length, **kwargs)
        if not data_dir:
            raise MissingDataError("task.datamodule.data_dir", "not set", hint=HINT)
        self.data_dir = Path(data_dir)
        self.split_dir = Path(split_dir) if split_dir else self.data_dir
        self.cache_dir, self.split_seed, self.vocab_file = cache_dir, split_seed, vocab_file
        events = load_vocab_file(vocab_file) if vocab_file else spec_events()
        self.vocab = ["PAD_None"] + events
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.bar_starts: dict[str, list[np.ndarray]] = {}
        self.skipped = 0
        self.description = f"REMI pop piano (Zenodo 4782721), {len(self.vocab)} tokens, windows of {max_length}"

    def shift_token(self, token: str, semitones: int) -> str | None:
        return shift_remi_token(token, semitones)

    def splits(self, files: list[str]) -> dict[str, list[str]]:
        lists = {s: self.split_dir / f"{s}_pieces.pkl" for s in ("train", "val", "test")}
        if all(p.is_file() for p in lists.values()):
            return {s: read_split_list(p) for s, p in lists.items()}
        log.warning(
            "no {train,val,test}_pieces.pkl in %s: splitting %d pieces with seed %d (90/5/5)",
            self.split_dir,
            len(files),
            self.split_seed,
        )
        order = [files[i] for i in np.random.default_rng(self.split_seed).permutation(len(files))]
        n_val = n_test = max(1, round(0.05 * len(files)))
        return {"train": order[n_val + n_test :], "val": order[:n_val], "test": order[n_val : n_val + n_test]}

    def load_pieces(self) -> Pieces:
        if not self.data_dir.is_dir():
            raise MissingDataError(self.data_dir, "pop-piano REMI directory not found", hint=HINT)
        files = sorted(p.name for p in self.data_dir.glob("*.pkl") if not p.name.endswith("_pieces.pkl"))
        if not files:
            raise MissingDataError(self.data_dir, "no REMI .pkl pieces in this directory", hint=HINT)
        splits = self.splits(files)
        params = {
            "data_dir": str(self.data_dir.resolve()),
            "splits": splits,
            "vocab": len(self.vocab),
            "vocab_file": self.vocab_file,
            "version": 1,
        }
        pieces = cached(
            self.cache_dir or self.data_dir / ".spelab_cache", "pop_piano", params, lambda: self._build(splits)
        )
        # bar starts travel as a pseudo-split in the cache
        for split in ("train", "val", "test"):
            self.bar_starts[split] = [b.astype(np.int64) for _, b in pieces.get(f"{split}-bars", [])]
        return {s: pieces[s] for s in ("train", "val", "test")}

    def _build(self, splits: dict[str, list[str]]) -> Pieces:
        skipped = SkippedRecords(self.data_dir)
        out: Pieces = {}
        for split, names in splits.items():
            out[split], out[f"{split}-bars"] = [], []
            for name in names:
                path = self.data_dir / name
                if not path.is_file():
                    skipped.add(None, f"listed in {split}_pieces.pkl but missing")
                    continue
                try:
                    ids, bars = read_piece(path, self.index)
                except (DataError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
                    skipped.add(None, type(err).__name__)
                    log.debug("skipping %s: %s", path, err)
                    continue
                out[split].append((name, ids))
                out[f"{split}-bars"].append((name, bars.astype(np.int32)))
        self.skipped = skipped.count
        if skipped.count:
            log.warning(skipped.summary(sum(len(v) for v in splits.values())))
        return out

    def build_split(self, split: str) -> Dataset:
        if split != "train":
            return super().build_split(split)
        _ = self.pieces
        table = transposition_table(self.vocab, self.max_shift, self.shift_token) if self.max_shift else None
        return RandomWindows(
            self.split_ids("train"),
            self.max_length,
            table,
            self.windows_per_piece,
            starts=self.bar_starts.get("train") or None,
        )

    def ids_to_score(self, ids: Sequence[int]) -> symusic.Score:
        return remi_events_to_score([self.vocab[int(i)] for i in ids if 0 < int(i) < len(self.vocab)])


def remi_events_to_score(tokens: Sequence[str]) -> symusic.Score:
    """Bar/Beat/Tempo/Note_Pitch-Velocity-Duration events -> a one-track score (480 ticks per beat)."""
    score = symusic.Score(TICKS_PER_BEAT)
    track = symusic.Track("piano", 0, False)
    bar, beat, i = -1, 0, 0
    while i < len(tokens):
        name, _, value = tokens[i].rpartition("_")
        if name == "Bar":
            bar, beat = bar + 1, 0
        elif name == "Beat":
            beat = int(value)
        elif name == "Tempo":
            score.tempos.append(
                symusic.Tempo(max(bar, 0) * STEPS_PER_BAR * TICKS_PER_STEP + beat * TICKS_PER_STEP, float(value))
            )
        elif (
            name == "Note_Pitch"
            and i + 2 < len(tokens)
            and tokens[i + 1].startswith("Note_Velocity_")
            and tokens[i + 2].startswith("Note_Duration_")
        ):
            start = (max(bar, 0) * STEPS_PER_BAR + beat) * TICKS_PER_STEP
            velocity = int(tokens[i + 1].rpartition("_")[2])
            duration = max(int(tokens[i + 2].rpartition("_")[2]), TICKS_PER_STEP // 2)
            track.notes.append(symusic.Note(start, duration, int(value), velocity))
            i += 2
        i += 1
    score.tracks.append(track)
    return score
