"""Audio rendering with FluidSynth (spelab.music.audio). Skipped, with the reason, where FluidSynth or a
soundfont is missing, except with CI=true (CI installs them: then they must run)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import symusic

from music_helpers import needs_audio, why_audio_unavailable
from spelab.music import audio


def two_notes(path):
    score = symusic.Score(480)
    track = symusic.Track("piano", 0, False)
    track.notes.append(symusic.Note(0, 480, 60, 100))
    track.notes.append(symusic.Note(480, 480, 67, 100))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


@needs_audio
def test_render_a_short_midi_to_wav_and_flac(tmp_path):
    midi = two_notes(tmp_path / "a.mid")
    wav = audio.render(midi, tmp_path / "a.wav", sample_rate=22050)
    with wave.open(str(wav)) as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 2
        seconds = w.getnframes() / w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert 0.9 <= seconds <= 5.0  # two beats at 120 bpm, plus the release
    assert np.abs(frames).max() > 1000  # not silence
    flac = audio.render(midi, tmp_path / "a.flac", sample_rate=22050)
    assert flac.read_bytes()[:4] == b"fLaC"


def test_missing_fluidsynth_or_soundfont_fails_with_the_install_command(tmp_path, monkeypatch):
    with pytest.raises(audio.AudioUnavailable, match="make audio-deps"):
        audio.check(str(tmp_path / "none.sf2"))
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(audio.AudioUnavailable, match="fluidsynth program"):
        audio.render(tmp_path / "a.mid", tmp_path / "a.wav")
    assert "fluidsynth" in why_audio_unavailable()


@needs_audio
def test_render_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="wav, flac"):
        audio.render(two_notes(tmp_path / "a.mid"), tmp_path / "a.mp3")
