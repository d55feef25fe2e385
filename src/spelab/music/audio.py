"""MIDI -> audio with the FluidSynth command line and a General MIDI soundfont.

Both are Debian packages (`make audio-deps`: `fluidsynth`, `fluid-soundfont-gm`); no Python package
is needed. The soundfont is `soundfont=`, else $SPELAB_SOUNDFONT, else the first of SOUNDFONTS that
exists. `check()` fails early, with the install command, when either is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
FORMATS = ("wav", "flac")
INSTALL = "install them with `make audio-deps` (apt-get install -y fluidsynth fluid-soundfont-gm)"


class AudioUnavailable(RuntimeError):
    """FluidSynth or a soundfont is missing."""


def find_soundfont(soundfont: str | None = None) -> Path | None:
    if soundfont:
        return Path(soundfont) if Path(soundfont).is_file() else None
    env = os.environ.get("SPELAB_SOUNDFONT")
    if env:
        return Path(env) if Path(env).is_file() else None
    return next((Path(p) for p in SOUNDFONTS if Path(p).is_file()), None)


def check(soundfont: str | None = None) -> tuple[str, Path]:
    """(fluidsynth executable, soundfont path), or AudioUnavailable saying what is missing and how to get it."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudioUnavailable(f"audio=true needs the fluidsynth program (not on PATH); {INSTALL}")
    sf = find_soundfont(soundfont)
    if sf is None:
        where = soundfont or os.environ.get("SPELAB_SOUNDFONT") or " or ".join(SOUNDFONTS)
        raise AudioUnavailable(
            f"audio=true needs a General MIDI soundfont (.sf2), none at {where}; {INSTALL}, or pass soundfont=PATH"
        )
    return exe, sf


def render(
    midi: str | Path,
    out: str | Path,
    soundfont: str | None = None,
    sample_rate: int = 44100,
    gain: float = 0.5,
    timeout: float = 300,
) -> Path:
    """Render `midi` to `out` (.wav or .flac, from its suffix); returns `out`."""
    exe, sf = check(soundfont)
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"audio file {out}: the format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    # -n no MIDI input, -i no shell, -q quiet, -F file output (fast, not real time)
    cmd = [exe, "-niq", "-g", str(gain), "-r", str(sample_rate), "-T", fmt, "-F", str(out), str(sf), str(midi)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"fluidsynth failed on {midi} (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return out
