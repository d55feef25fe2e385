"""spelab.music.metrics against hand-computed values and brute-force float64 references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import symusic

from spelab.music import metrics as mm


def make_notes(rows, bar_beats=4.0):
    """rows: (onset beats, duration beats, pitch, drum, track)."""
    rows = sorted(rows, key=lambda r: r[0])
    cols = list(zip(*rows)) if rows else [[]] * 5
    return mm.Notes(
        np.array(cols[0], float),
        np.array(cols[1], float),
        np.array(cols[2], int),
        np.array(cols[3], bool),
        np.array(cols[4], int),
        bar_beats,
    )


def test_basic_metrics_by_hand():
    notes = make_notes(
        [(0, 1, 60, False, 0), (1, 1, 64, False, 0), (2, 2, 67, False, 0), (2, 1, 72, False, 0), (3, 0.5, 36, True, 1)]
    )
    m = mm.basic_metrics(notes)
    assert m["num_notes"] == 5 and m["length_beats"] == 4.0 and m["note_density"] == 5 / 4
    assert m["pitch_range"] == 12  # drums excluded
    assert m["pitch_class_entropy"] == pytest.approx(1.5)  # C twice, E, G: -(.5 log .5 + 2 * .25 log .25)
    assert mm.pitch_class_entropy(make_notes([(0, 1, p, False, 0) for p in range(60, 72)])) == pytest.approx(
        math.log2(12)
    )


def test_notes_of_reads_a_score_in_beats():
    score = symusic.Score(480)
    track = symusic.Track("p", 0, False)
    track.notes.append(symusic.Note(960, 240, 62, 80))
    track.notes.append(symusic.Note(0, 480, 60, 80))
    score.tracks.append(track)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    notes = mm.notes_of(score)
    assert notes.onset.tolist() == [0.0, 2.0] and notes.duration.tolist() == [1.0, 0.5]
    assert notes.pitch.tolist() == [60, 62] and notes.bar_beats == 3.0


def brute_time_pitch_diff(notes):
    hist = np.zeros((24, 41))
    for i, j in itertools.permutations(range(len(notes)), 2):
        if notes.drum[i] or notes.drum[j] or notes.track[i] != notes.track[j]:
            continue
        if (notes.onset[j], j) <= (notes.onset[i], i):  # pairs in onset order, each once
            continue
        dt, dp = notes.onset[j] - notes.onset[i], notes.pitch[j] - notes.pitch[i]
        if dt < 4 and abs(dp) <= 20:
            hist[min(int(math.floor(dt * 6 + 1e-9)), 23), dp + 20] += 1
    return hist


def random_notes(rng, n=40, tracks=2):
    return make_notes(
        [
            (
                float(rng.integers(0, 96)) / 6,
                float(rng.integers(1, 18)) / 6,
                int(rng.integers(40, 80)),
                bool(rng.random() < 0.2),
                int(rng.integers(0, tracks)),
            )
            for _ in range(n)
        ]
    )


def test_time_pitch_diff_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    for _ in range(5):
        notes = random_notes(rng)
        np.testing.assert_array_equal(mm.time_pitch_diff(notes), brute_time_pitch_diff(notes))


def test_onset_duration_and_drum_bins():
    notes = make_notes([(4.5, 0.5, 60, False, 0), (0.0, 5.0, 62, False, 0), (1 / 6, 0.1, 36, True, 1)])
    od = mm.onset_duration(notes)
    assert od.shape == (24, 13) and od.sum() == 2
    assert od[3, 3] == 1 and od[0, 12] == 1  # onset 4.5 -> 0.5 in the bar; a 5-beat note in the last bin
    assert mm.onset_drum(notes)[1, 36] == 1 and mm.onset_drum(notes).sum() == 1


def test_style_similarity_is_one_for_the_same_style_and_lower_for_another():
    bar = [
        (0, 1, 60, False, 0),
        (1, 0.5, 64, False, 0),
        (1.5, 0.5, 62, False, 0),
        (2, 2, 67, False, 0),
        (0, 0.25, 36, True, 1),
        (2, 0.25, 38, True, 1),
    ]
    ref = make_notes([(o + 4 * b, d, p, dr, t) for b in range(2) for o, d, p, dr, t in bar])
    same = make_notes([(o + 4 * b, d, p, dr, t) for b in range(8) for o, d, p, dr, t in bar])
    sims = mm.style_similarity(same, ref)
    assert all(s == pytest.approx(1.0) for s in sims["onset_duration"] + sims["onset_drum"])
    assert all(s > 0.9 for s in sims["time_pitch_diff"])
    other = make_notes([(o / 3 + 4 * b, 1 / 3, 40 + 7 * (o % 3), False, 0) for b in range(8) for o in range(12)])
    low = mm.style_similarity(other, ref)
    assert all(s < 0.5 for s in low["onset_duration"] + low["time_pitch_diff"])
    assert low["onset_drum"] == [None] * 4  # no drums in the continuation
    summary = mm.summarise([sims, low])
    assert summary["onset_drum/seg0/mean"] == pytest.approx(1.0)  # None skipped
