"""task=groove reader on tiny Groove2Groove-layout MIDI fixtures (written with mido), incl. a corrupt file."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from spelab.data.music.groove import GrooveDataModule
from spelab.errors import MissingDataError

TPB = 96


def write_song(path: Path, bars: int, root: int) -> None:
    """BB Bass (program 33), BB Drums (channel 10), BB Piano and BB Strings: a note per beat each."""
    mid = mido.MidiFile(ticks_per_beat=TPB)
    parts = [
        ("BB Bass", 33, 0, root - 24),
        ("BB Drums", 0, 9, 36),
        ("BB Piano", 0, 1, root),
        ("BB Strings", 48, 2, root + 7),
    ]
    for name, program, channel, pitch in parts:
        track = mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name=name, time=0),
                mido.Message("program_change", program=program, channel=channel, time=0),
            ]
        )
        for beat in range(4 * bars):
            p = pitch + (beat % 3 if channel != 9 else 0)
            track.append(mido.Message("note_on", note=p, velocity=80, channel=channel, time=0))
            track.append(mido.Message("note_off", note=p, velocity=0, channel=channel, time=TPB))
        mid.tracks.append(track)
    mid.save(path)


@pytest.fixture()
def g2g(tmp_path):
    root = tmp_path / "groove2groove"
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        d = root / "midi" / split / "fixed"
        d.mkdir(parents=True)
        for i in range(n):
            write_song(d / f"song{i}.mid", bars=6, root=60 + i)
    (root / "midi" / "train" / "fixed" / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return root


def test_reader_trios_and_corrupt_file(g2g, tmp_path):
    dm = GrooveDataModule(data_dir=str(g2g), cache_dir=str(tmp_path / "cache"), max_length=64, batch_size=2)
    pieces = dm.pieces
    assert dm.skipped["train"] == 1  # corrupt.mid skipped and counted
    # two harmonic tracks -> two trios per training song; one trio per val/test song
    assert len(pieces["train"]) == 6 and len(pieces["val"]) == 1 and len(pieces["test"]) == 1
    score = dm.ids_to_score(pieces["test"][0][1])
    tracks = {(t.is_drum, t.program): len(t.notes) for t in score.tracks}
    # 6 bars minus the 2-bar count-in = 16 beats, one note per beat and track
    assert tracks == {(False, 33): 16, (True, 0): 16, (False, 0): 16}
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] == 65 and int(batch["input_ids"].max()) < dm.vocab_size


def test_drums_are_never_transposed(g2g, tmp_path):
    dm = GrooveDataModule(data_dir=str(g2g), cache_dir=str(tmp_path / "cache"), max_length=64)
    assert dm.shift_token("DrumOn_36", 3) == "DrumOn_36"
    assert dm.shift_token("NoteOn_60", 3) == "NoteOn_63" and dm.shift_token("NoteOff_60", -2) == "NoteOff_58"


def test_missing_directory_names_it_and_how_to_get_it(tmp_path):
    dm = GrooveDataModule(data_dir=str(tmp_path / "g2g"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(MissingDataError, match=r"g2g/midi/train/fixed") as err:
        _ = dm.pieces
    assert "zenodo.org/record/3958000" in str(err.value)
