"""task=groove: Groove2Groove accompaniments (Cifka et al. 2020) as 3-track MIDI-like token streams.

Expects the extracted Zenodo archive (record 3958000): `<data_dir>/midi/{train,val,test}/fixed/*.mid`.
Each file gives "trios" of bass + drums + one harmonic track (every non-empty harmonic track makes one
trio in training, the first one in val/test), the 2-bar count-in dropped, resampled to 12 ticks per
beat, tokenised with miditok MIDILike (NoteOn/NoteOff/Velocity per Program, TimeShift up to 2 beats;
drums use DrumOn/DrumOff and are never transposed). Training windows of 512 tokens (the paper's
length). A corrupt MIDI file is skipped and counted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import symusic
from miditok import MIDILike, TokenizerConfig

from spelab.data.music.cache import Pieces, cached
from spelab.data.music.datamodule import MusicDataModule
from spelab.data.music.vocab import shift_pitch_token
from spelab.errors import MissingDataError, SkippedRecords

log = logging.getLogger(__name__)

HINT = (
    "download https://zenodo.org/record/3958000/files/groove2groove-data-v1.0.0.tar.gz (236 MB), "
    "extract it and pass task.datamodule.data_dir=<dir holding midi/>"
)
TICKS_PER_BEAT = 12
SPLITS = ("train", "val", "test")


def make_groove_tokenizer(num_velocities: int = 8) -> MIDILike:
    config = TokenizerConfig(
        pitch_range=(21, 109),
        beat_res={(0, 2): TICKS_PER_BEAT},
        num_velocities=num_velocities,
        use_programs=True,
        one_token_stream_for_programs=True,
        use_time_signatures=False,
        use_tempos=False,
        special_tokens=["PAD", "BOS", "EOS"],
    )
    tokenizer = MIDILike(config)
    assert tokenizer.pad_token_id == 0
    return tokenizer


def is_bass(track: symusic.Track) -> bool:
    return not track.is_drum and (32 <= track.program <= 39 or "bass" in track.name.lower())


def trios(score: symusic.Score, drop_bars: int = 2, all_harmonic: bool = True) -> list[symusic.Score]:
    """Bass + drums + one harmonic track per score (one per harmonic track when `all_harmonic`)."""
    score = score.resample(TICKS_PER_BEAT, min_dur=1)
    start = drop_bars * 4 * TICKS_PER_BEAT
    if drop_bars:
        score = score.clip(start, max(score.end(), start) + 1).shift_time(-start)
    tracks = [t for t in score.tracks if len(t.notes)]
    bass = [t for t in tracks if is_bass(t)][:1]
    drums = [t for t in tracks if t.is_drum][:1]
    harmonic = [t for t in tracks if not t.is_drum and not is_bass(t)]
    out = []
    for h in (harmonic if all_harmonic else harmonic[:1]) or [None]:
        trio = symusic.Score(TICKS_PER_BEAT)
        for t in bass + drums + ([h] if h is not None else []):
            trio.tracks.append(t.copy())
        if len(trio.tracks):
            out.append(trio)
    return out


def read_split(
    directory: Path, tokenizer: MIDILike, all_harmonic: bool, drop_bars: int, max_files: int | None
) -> tuple[list[tuple[str, np.ndarray]], SkippedRecords]:
    files = sorted(directory.glob("*.mid")) + sorted(directory.glob("*.midi"))
    files = files[:max_files] if max_files else files
    skipped = SkippedRecords(directory)
    pieces = []
    for path in files:
        try:
            score = symusic.Score(str(path))
        except Exception as err:  # symusic raises RuntimeError/ValueError on broken files
            skipped.add(None, f"unreadable MIDI ({type(err).__name__})")
            log.debug("skipping %s: %s", path, err)
            continue
        made = trios(score, drop_bars, all_harmonic)
        if not made:
            skipped.add(None, "no notes after the count-in")
            continue
        for i, trio in enumerate(made):
            ids = np.asarray(tokenizer.encode(trio).ids, dtype=np.int32)
            if len(ids) >= 2:
                pieces.append((f"{path.name}#{i}", ids))
    return pieces, skipped


class GrooveDataModule(MusicDataModule):
    """Groove2Groove trios (bass, drums, one harmonic track), MIDI-like tokens."""

    def __init__(
        self,
        data_dir: str | None = None,
        cache_dir: str | None = None,
        max_files: int | None = None,
        drop_bars: int = 2,
        num_velocities: int = 8,
        max_length: int = 512,
        **kwargs,
    ) -> None:
        super().__init__(max_length=max_length, **kwargs)
        if not data_dir:
            raise MissingDataError("task.datamodule.data_dir", "not set", hint=HINT)
        self.data_dir, self.cache_dir, self.max_files, self.drop_bars = Path(data_dir), cache_dir, max_files, drop_bars
        self.tokenizer = make_groove_tokenizer(num_velocities)
        inverse = {i: t for t, i in self.tokenizer.vocab.items()}
        self.vocab = [inverse[i] for i in range(len(inverse))]
        self.num_velocities = num_velocities
        self.skipped: dict[str, int] = {}
        self.description = f"Groove2Groove trios (MIDI-like, {len(self.vocab)} tokens), windows of {max_length}"

    def split_dir(self, split: str) -> Path:
        return self.data_dir / "midi" / split / "fixed"

    def shift_token(self, token: str, semitones: int) -> str | None:
        return shift_pitch_token(token, semitones, prefixes=("NoteOn_", "NoteOff_"))

    def load_pieces(self) -> Pieces:
        for split in SPLITS:
            if not self.split_dir(split).is_dir():
                raise MissingDataError(self.split_dir(split), "Groove2Groove split directory not found", hint=HINT)
        params = {
            "data_dir": str(self.data_dir.resolve()),
            "max_files": self.max_files,
            "drop_bars": self.drop_bars,
            "num_velocities": self.num_velocities,
            "files": {s: len(list(self.split_dir(s).glob("*.mid"))) for s in SPLITS},
            "version": 1,
        }
        cache_dir = self.cache_dir or (self.data_dir / ".spelab_cache")
        return cached(cache_dir, "groove", params, self._build)

    def _build(self) -> Pieces:
        pieces: Pieces = {}
        for split in SPLITS:
            items, skipped = read_split(
                self.split_dir(split), self.tokenizer, split == "train", self.drop_bars, self.max_files
            )
            self.skipped[split] = skipped.count
            if skipped.count:
                log.warning(skipped.summary())
            if not items:
                raise MissingDataError(self.split_dir(split), f"no usable MIDI files ({skipped.summary()})", hint=HINT)
            pieces[split] = items
        return pieces

    def ids_to_score(self, ids: Sequence[int]) -> symusic.Score:
        keep = [int(i) for i in ids if int(i) >= len(self.tokenizer.config.special_tokens)]
        return self.tokenizer.decode(keep)
