"""task=pop_piano reader on a tiny fixture of pickles in the official (bar_pos, events) format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from spelab.data.music.pop_piano import PopPianoDataModule, shift_remi_token, spec_events
from spelab.errors import MissingDataError

ROOTS = ["C", "D", "E", "F", "G", "A"]


def make_piece(num_bars: int, seed: int) -> tuple[list[int], list[dict]]:
    """A piece as the official converter writes it: Bar, then per beat (Tempo, Chord) and note triples."""
    rng = np.random.default_rng(seed)
    events, bar_pos = [], []
    for bar in range(num_bars):
        bar_pos.append(len(events))
        events.append({"name": "Bar", "value": None})
        for beat in (0, 4, 8, 12):
            events.append({"name": "Beat", "value": beat})
            if beat == 0:
                events.append({"name": "Tempo", "value": 119 if bar == 0 else 120})
                events.append({"name": "Chord", "value": f"{ROOTS[bar % 6]}_M"})
            for _ in range(2):
                events += [
                    {"name": "Note_Pitch", "value": int(rng.integers(40, 90))},
                    {"name": "Note_Velocity", "value": 60},
                    {"name": "Note_Duration", "value": 480},
                ]
    events.append({"name": "EOS", "value": None})
    return bar_pos, events


@pytest.fixture()
def remi_dir(tmp_path):
    data = tmp_path / "remi_dataset"
    data.mkdir()
    names = [f"{i}.pkl" for i in range(6)]
    for i, name in enumerate(names):
        with open(data / name, "wb") as f:
            pickle.dump(make_piece(4 + i, i), f)
    (data / "broken.pkl").write_bytes(b"not a pickle")
    splits = tmp_path / "pickles"
    splits.mkdir()
    for split, part in {
        "train": names[:3] + ["broken.pkl"],
        "val": names[3:4],
        "test": [n[:-4] for n in names[4:]],
    }.items():
        with open(splits / f"{split}_pieces.pkl", "wb") as f:
            pickle.dump(part, f)
    return data, splits


def test_spec_vocabulary():
    events = spec_events()
    assert len(events) == len(set(events)) == 343  # 332 in the paper + 11 tempo bins absent from its data
    assert events.index("Bar_None") == 0 and events.index("EOS_None") == 150  # the paper's ids
    kinds = {e.rsplit("_", 1)[0] for e in events}
    assert {"Note_Pitch", "Note_Velocity", "Note_Duration", "Beat", "Tempo"} <= kinds
    assert sum(e.startswith("Chord_") for e in events) == 133


def test_reader_splits_and_tokens(remi_dir):
    data, splits = remi_dir
    dm = PopPianoDataModule(
        data_dir=str(data), split_dir=str(splits), cache_dir=str(data.parent / "c"), max_length=64, batch_size=2
    )
    assert dm.vocab_size == 344 and dm.vocab[0] == "PAD_None"
    pieces = dm.pieces
    assert [n for n, _ in pieces["train"]] == ["0.pkl", "1.pkl", "2.pkl"] and dm.skipped == 1  # broken.pkl
    assert [n for n, _ in pieces["test"]] == ["4.pkl", "5.pkl"]  # ids without .pkl in the list
    bar_pos, events = make_piece(4, 0)
    ids = pieces["train"][0][1]
    assert len(ids) == len(events)
    decoded = [dm.vocab[i] for i in ids]
    assert decoded[0] == "Bar_None" and decoded[-1] == "EOS_None"
    assert decoded[2] == "Tempo_119"  # 119 = 32 + 3 * 29 is a bin
    assert [decoded[p] for p in bar_pos] == ["Bar_None"] * 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] <= 65 and int(batch["input_ids"].max()) < dm.vocab_size


def test_training_windows_start_on_bars(remi_dir):
    data, splits = remi_dir
    dm = PopPianoDataModule(
        data_dir=str(data), split_dir=str(splits), cache_dir=str(data.parent / "c"), max_length=40, max_shift=0
    )
    ds = dm.build_split("train")
    bar_id = dm.vocab.index("Bar_None")
    assert all(int(ds[k]["input_ids"][0]) == bar_id for k in range(12))


def test_transposition_moves_chords_with_pitches():
    assert shift_remi_token("Chord_G#_m7", 2) == "Chord_A#_m7"
    assert shift_remi_token("Chord_N_N", 3) == "Chord_N_N"
    assert shift_remi_token("Note_Pitch_60", -6) == "Note_Pitch_54"
    assert shift_remi_token("Note_Velocity_60", 2) == "Note_Velocity_60"


def test_decoded_midi_has_the_notes(remi_dir, tmp_path):
    import mido

    data, splits = remi_dir
    dm = PopPianoDataModule(data_dir=str(data), split_dir=str(splits), cache_dir=str(data.parent / "c"))
    ids = dm.split_ids("val")[0]
    path = dm.write_midi(ids, tmp_path / "x.mid")
    note_ons = [m for t in mido.MidiFile(path).tracks for m in t if m.type == "note_on" and m.velocity > 0]
    assert len(note_ons) == sum(dm.vocab[i].startswith("Note_Pitch_") for i in ids)


def test_missing_directory_names_it_and_how_to_get_it(tmp_path):
    dm = PopPianoDataModule(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match="nowhere") as err:
        _ = dm.pieces
    assert "zenodo.org/record/4782721" in str(err.value)
