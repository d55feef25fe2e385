"""task=music data: split by piece, windows, padding, transposition, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spelab.data.music.chorales import ChoralesDataModule, split_names
from music_helpers import SMOKE_PIECES


@pytest.fixture(scope="module")
def dm(music_cache):
    return ChoralesDataModule(
        max_pieces=SMOKE_PIECES, max_length=32, data_dir=str(music_cache), batch_size=4, windows_per_piece=2
    )


def test_contract_attributes_before_setup(music_cache):
    fresh = ChoralesDataModule(max_pieces=SMOKE_PIECES, data_dir=str(music_cache))
    assert fresh.num_classes == 0 and fresh.pad_id == 0
    assert fresh.vocab[0].startswith("PAD") and fresh.vocab_size == len(fresh.tokenizer)


def test_split_is_by_piece_and_fixed():
    names = [f"p{i}" for i in range(50)]
    a, b = split_names(names, (0.8, 0.1, 0.1), 0, None), split_names(names, (0.8, 0.1, 0.1), 0, None)
    assert a == b
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(names)
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    assert split_names(names, (0.8, 0.1, 0.1), 1, None) != a


def test_batches_follow_the_lm_contract(dm):
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "padding_mask"}
    assert batch["input_ids"].shape[1] == dm.max_length + 1  # chorales are longer than 33 tokens
    assert batch["input_ids"].dtype == torch.long and batch["padding_mask"].dtype == torch.bool
    assert int(batch["input_ids"].max()) < dm.vocab_size
    val = next(iter(dm.val_dataloader()))
    assert torch.equal(val["input_ids"] == 0, val["padding_mask"])  # pad id 0 exactly where masked


def test_training_windows_are_transposed_slices(dm):
    """Every training window is a contiguous slice of one piece, up to a single pitch shift."""
    pitch = {i: int(t.split("_")[1]) for i, t in enumerate(dm.vocab) if t.startswith("Pitch_")}
    ds = dm.datasets.get("train") or dm.build_split("train")
    shifted = 0
    for k in range(8):
        window = ds[k]["input_ids"].numpy()
        piece = ds.pieces[k % len(ds.pieces)]
        unpitched = np.array([-1 if i in pitch else i for i in window])
        found = False
        for start in range(len(piece) - len(window) + 1):
            ref = piece[start : start + len(window)]
            if np.array_equal(unpitched, [-1 if i in pitch else i for i in ref]):
                diffs = {pitch[a] - pitch[b] for a, b in zip(window, ref) if a in pitch}
                if len(diffs) <= 1:
                    found, shifted = True, shifted + (diffs != {0})
                    break
        assert found
    assert shifted > 0


def test_cache_is_reused(music_cache, monkeypatch):
    first = ChoralesDataModule(max_pieces=SMOKE_PIECES, data_dir=str(music_cache))
    pieces = first.pieces
    second = ChoralesDataModule(max_pieces=SMOKE_PIECES, data_dir=str(music_cache))
    monkeypatch.setattr(second, "_build", lambda: pytest.fail("rebuilt despite the cache"))
    again = second.pieces
    assert [n for n, _ in again["test"]] == [n for n, _ in pieces["test"]]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(again["train"], pieces["train"]))


def test_prefixes_are_untransposed_piece_starts(dm):
    prefixes = dm.prefixes("test", 128)
    piece = dm.split_ids("test")[0]
    assert np.array_equal(prefixes[0]["input_ids"].numpy(), piece[:129])


def test_bad_arguments_fail_early(music_cache):
    with pytest.raises(ValueError, match="max_length"):
        ChoralesDataModule(max_length=1, data_dir=str(music_cache))
    with pytest.raises(ValueError, match="max_pieces"):
        ChoralesDataModule(max_pieces=2, data_dir=str(music_cache))
    with pytest.raises(ValueError, match="split_fractions"):
        ChoralesDataModule(split_fractions=(0.5, 0.5), data_dir=str(music_cache))
