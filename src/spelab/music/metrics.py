"""Metrics of generated music, comparable across runs (logged by spelab.generate).

All work on a plain note list, so they do not depend on the tokenisation: `Notes` holds onset and
duration in beats (quarter notes), pitch and a drum flag, read from a symusic score.

- note density: notes per beat; pitch range: max - min pitch; pitch-class entropy: entropy (bits) of
  the 12-bin pitch-class histogram (0 = one pitch class, log2 12 = 3.585 = uniform). Drums excluded.
- style similarity (the SPE paper's Groove2Groove measure): a generated continuation is cut into 4
  equal time segments and each segment's style profile is compared, by cosine similarity, with the
  profile of the whole reference piece (the piece the prompt came from). Profiles are normalised 2-D
  histograms: `time_pitch_diff` (onset difference x interval over pairs of pitched notes, 1/6-beat
  bins up to 4 beats, intervals -20..20), `onset_duration` (onset in the bar x duration, 1/6-beat
  bins, durations up to 2 beats), `onset_drum` (onset in the bar x drum pitch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BIN = 1 / 6  # beats per histogram bin (the paper's resolution)
MAX_DT = 4.0  # beats, time_pitch_diff
MAX_INTERVAL = 20  # semitones, time_pitch_diff
MAX_DURATION = 2.0  # beats, onset_duration (longer notes fall in the last bin)
SEGMENTS = 4


@dataclass
class Notes:
    onset: np.ndarray  # beats
    duration: np.ndarray  # beats
    pitch: np.ndarray
    drum: np.ndarray  # bool
    track: np.ndarray  # track index (time_pitch_diff pairs notes of one track)
    bar_beats: float = 4.0

    def __len__(self) -> int:
        return len(self.onset)

    def select(self, keep: np.ndarray) -> "Notes":
        return Notes(
            self.onset[keep], self.duration[keep], self.pitch[keep], self.drum[keep], self.track[keep], self.bar_beats
        )


def notes_of(score) -> Notes:
    """The notes of a symusic score, in beats; the bar length from its first time signature (4/4 if none)."""
    tpq = float(score.ticks_per_quarter)
    onset, duration, pitch, drum, index = [], [], [], [], []
    for t, track in enumerate(score.tracks):
        for n in track.notes:
            onset.append(n.time / tpq)
            duration.append(n.duration / tpq)
            pitch.append(n.pitch)
            drum.append(bool(track.is_drum))
            index.append(t)
    bar = 4.0
    if len(score.time_signatures):
        ts = score.time_signatures[0]
        bar = ts.numerator * 4.0 / ts.denominator
    order = np.argsort(np.asarray(onset, dtype=float), kind="stable")
    return Notes(
        np.asarray(onset, float)[order],
        np.asarray(duration, float)[order],
        np.asarray(pitch, int)[order],
        np.asarray(drum, bool)[order],
        np.asarray(index, int)[order],
        bar,
    )


def pitch_class_entropy(notes: Notes) -> float | None:
    pitched = notes.pitch[~notes.drum]
    if not len(pitched):
        return None
    hist = np.bincount(pitched % 12, minlength=12).astype(float)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def basic_metrics(notes: Notes) -> dict[str, Any]:
    pitched = notes.pitch[~notes.drum]
    span = float((notes.onset + notes.duration).max()) if len(notes) else 0.0  # the piece ends with its last note
    return {
        "num_notes": len(notes),
        "length_beats": span,
        "note_density": len(notes) / span if span > 0 else None,
        "pitch_range": int(pitched.max() - pitched.min()) if len(pitched) else None,
        "pitch_class_entropy": pitch_class_entropy(notes),
    }


# -- style profiles -------------------------------------------------------------------------------


def _bin(x: np.ndarray) -> np.ndarray:
    return np.floor(x / BIN + 1e-9).astype(int)


def time_pitch_diff(notes: Notes) -> np.ndarray:
    """(onset difference bins, intervals) histogram over pairs of pitched notes of one track, the second
    starting 0 <= dt < 4 beats after the first (in onset order)."""
    n = notes.select(~notes.drum)
    hist = np.zeros((int(round(MAX_DT / BIN)), 2 * MAX_INTERVAL + 1))
    for i in range(len(n)):
        dt = n.onset[i + 1 :] - n.onset[i]
        near = (dt < MAX_DT) & (n.track[i + 1 :] == n.track[i])
        dp = n.pitch[i + 1 :][near] - n.pitch[i]
        ok = np.abs(dp) <= MAX_INTERVAL
        np.add.at(hist, (np.minimum(_bin(dt[near][ok]), hist.shape[0] - 1), dp[ok] + MAX_INTERVAL), 1)
    return hist


def onset_duration(notes: Notes) -> np.ndarray:
    """(onset in the bar, duration) histogram of pitched notes."""
    n = notes.select(~notes.drum)
    hist = np.zeros((int(math.ceil(n.bar_beats / BIN)), int(round(MAX_DURATION / BIN)) + 1))
    onset = np.minimum(_bin(np.mod(n.onset, n.bar_beats)), hist.shape[0] - 1)
    np.add.at(hist, (onset, np.minimum(_bin(n.duration), hist.shape[1] - 1)), 1)
    return hist


def onset_drum(notes: Notes) -> np.ndarray:
    """(onset in the bar, drum pitch) histogram."""
    n = notes.select(notes.drum)
    hist = np.zeros((int(math.ceil(n.bar_beats / BIN)), 128))
    np.add.at(hist, (np.minimum(_bin(np.mod(n.onset, n.bar_beats)), hist.shape[0] - 1), n.pitch), 1)
    return hist


PROFILES = {"time_pitch_diff": time_pitch_diff, "onset_duration": onset_duration, "onset_drum": onset_drum}


def cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float((a * b).sum() / (na * nb)) if na > 0 and nb > 0 else None


def style_similarity(
    generated: Notes, reference: Notes, start: float = 0.0, segments: int = SEGMENTS
) -> dict[str, list[float | None]]:
    """Per profile, the cosine similarity of each of `segments` equal time segments of `generated`
    (from beat `start`: the continuation after the prompt) with the whole `reference`; None where a
    segment or the reference has no notes of that kind."""
    cont = generated.select(generated.onset >= start)
    end = float((cont.onset + cont.duration).max()) if len(cont) else start
    edges = np.linspace(start, max(end, start + 1e-9), segments + 1)
    out: dict[str, list[float | None]] = {}
    for name, profile in PROFILES.items():
        ref = profile(reference)
        sims = []
        for k in range(segments):
            last = k == segments - 1
            keep = (cont.onset >= edges[k]) & ((cont.onset <= edges[k + 1]) if last else (cont.onset < edges[k + 1]))
            sims.append(cosine(profile(cont.select(keep)), ref))
        out[name] = sims
    return out


def summarise(per_sample: list[dict[str, Any]]) -> dict[str, float]:
    """Mean (and std) over samples of every numeric metric, skipping None; flat keys for logging."""
    flat: dict[str, list[float]] = {}
    for sample in per_sample:
        for key, value in sample.items():
            values = value if isinstance(value, list) else [value]
            for k, v in enumerate(values):
                name = f"{key}/seg{k}" if isinstance(value, list) else key
                if isinstance(v, (int, float)) and not isinstance(v, bool):  # None and names are skipped
                    flat.setdefault(name, []).append(float(v))
    out = {}
    for name, vals in flat.items():
        out[f"{name}/mean"] = float(np.mean(vals))
        out[f"{name}/std"] = float(np.std(vals))
    return out
