"""What spelab.generate writes per sample: MIDI, its tokens, metrics, a piano roll and (audio=true) audio.

sample_NN.mid, sample_NN.tokens.json, sample_NN.png, sample_NN.{wav,flac}; metrics.json holds every
sample's metrics and their mean/std. Files are written sample by sample, MIDI first, so a failing
renderer never loses a finished sample.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from spelab.music import metrics as mm

log = logging.getLogger(__name__)

METRICS_JSON = "metrics.json"


def sample_metrics(notes: mm.Notes, prompt: mm.Notes | None, reference: mm.Notes | None) -> dict[str, Any]:
    """Metrics of the whole piece (prompt included); with a reference piece, the style similarity of
    the continuation's 4 segments with it (the continuation starts at the prompt's last onset)."""
    m: dict[str, Any] = mm.basic_metrics(notes)
    if reference is not None:
        start = float(prompt.onset.max()) if prompt is not None and len(prompt) else 0.0
        m.update({f"style_{k}": v for k, v in mm.style_similarity(notes, reference, start).items()})
    return m


def write_samples(
    dm,
    rows: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    prompt_length: int,
    out: Path,
    reference: Sequence[int] | None = None,
    audio: bool = False,
    audio_format: str = "wav",
    soundfont: str | None = None,
    piano_roll: bool = True,
) -> list[dict[str, Any]]:
    """One record per sample: {midi, image, audio (paths or None), metrics}; also writes metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    ref = mm.notes_of(dm.ids_to_score([int(x) for x in reference])) if reference is not None else None
    records = []
    for i, (row, completion) in enumerate(zip(rows, completions)):
        stem = out / f"sample_{i:02d}"
        full = list(row) + list(completion)
        midi = dm.write_midi(full, stem.with_suffix(".mid"))
        stem.with_suffix(".tokens.json").write_text(
            json.dumps({"prompt_length": prompt_length, "ids": list(row), "completion": list(completion)})
        )
        notes = mm.notes_of(dm.ids_to_score(full))
        prompt = mm.notes_of(dm.ids_to_score(list(row[:prompt_length]))) if prompt_length > 1 else None
        metrics = {"file": midi.name, **sample_metrics(notes, prompt, ref)}
        record: dict[str, Any] = {"midi": midi, "image": None, "audio": None, "metrics": metrics}
        if piano_roll:
            from spelab.music.pianoroll import piano_roll as draw

            end = float(prompt.onset.max()) if prompt is not None and len(prompt) else None
            record["image"] = draw(notes, stem.with_suffix(".png"), f"{midi.name}: {len(notes)} notes", end)
        if audio:
            from spelab.music.audio import render

            try:
                record["audio"] = render(midi, stem.with_suffix(f".{audio_format}"), soundfont)
            except (RuntimeError, OSError) as err:  # keep the other samples and their files
                log.warning("no audio for %s: %s", midi, err)
        records.append(record)
    samples = [r["metrics"] for r in records]
    (out / METRICS_JSON).write_text(json.dumps({"samples": samples, "summary": mm.summarise(samples)}, indent=1) + "\n")
    return records
