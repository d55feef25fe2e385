"""VADER's 10,605 Rotten-Tomatoes movie-review snippets (Hutto & Gilbert, ICWSM 2014; MIT licence).

They ship only in the vaderSentiment *source* distribution (the wheel has the lexicons alone), inside
`additional_resources/hutto_ICWSM_2014.tar.gz` -> `movieReviewSnippets_GroundTruth.txt`, one line per
snippet: `id<TAB>mean rating in [-4, 4]<TAB>text`. The text comes from Pang & Lee's movie reviews.

Nothing is vendored: `ensure_vader_snippets(dir)` uses the snippets file, or a vaderSentiment sdist,
already in `dir`; otherwise (when allowed) it asks pip, the ordinary PyPI client, for the sdist once
and extracts the one file.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from spelab.errors import DataError, MissingDataError

log = logging.getLogger(__name__)

SNIPPETS_FILE = "movieReviewSnippets_GroundTruth.txt"
VADER_SDIST = "vaderSentiment==3.3.2"
INNER_TAR = "additional_resources/hutto_ICWSM_2014.tar.gz"
HINT = (
    f"run `python -m pip download --no-deps --no-binary :all: {VADER_SDIST} -d DIR` (PyPI) and point "
    "task.datamodule.data_dir at DIR, or put movieReviewSnippets_GroundTruth.txt there"
)


def extract_snippets(sdist: Path, out_dir: Path) -> Path:
    """Pull movieReviewSnippets_GroundTruth.txt out of the sdist's nested tarball into `out_dir`."""
    try:
        with tarfile.open(sdist) as outer:
            member = next((m for m in outer.getmembers() if m.name.endswith(INNER_TAR)), None)
            if member is None:
                raise DataError(sdist, f"no {INNER_TAR} inside", hint=HINT)
            inner_bytes = outer.extractfile(member).read()
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            member = next((m for m in inner.getmembers() if m.name.endswith(SNIPPETS_FILE)), None)
            if member is None:
                raise DataError(sdist, f"no {SNIPPETS_FILE} inside {INNER_TAR}", hint=HINT)
            data = inner.extractfile(member).read()
    except tarfile.TarError as err:
        raise DataError(sdist, f"not a readable sdist tarball ({err})", hint=HINT) from err
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / SNIPPETS_FILE
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def ensure_vader_snippets(data_dir: str | os.PathLike, download: bool = True) -> Path:
    """Path of the snippets file in `data_dir`, extracting or fetching (pip, PyPI) it when needed."""
    data_dir = Path(data_dir).expanduser()
    target = data_dir / SNIPPETS_FILE
    if target.is_file():
        return target
    sdists = sorted(data_dir.glob("vaderSentiment-*.tar.gz")) if data_dir.is_dir() else []
    if not sdists and download:
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            VADER_SDIST,
            "-d",
            str(data_dir),
            "--quiet",
        ]
        log.info("Fetching the VADER sdist from PyPI for its movie-review snippets: %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise MissingDataError(target, f"pip download failed ({err})", hint=HINT) from err
        if proc.returncode != 0:
            raise MissingDataError(target, f"pip download failed: {proc.stderr.strip()[-300:]}", hint=HINT)
        sdists = sorted(data_dir.glob("vaderSentiment-*.tar.gz"))
    if not sdists:
        raise MissingDataError(target, "VADER movie-review snippets not found (and download=false)", hint=HINT)
    return extract_snippets(sdists[-1], data_dir)


def read_vader_snippets(path: str | os.PathLike) -> list[tuple[int, float, str]]:
    """(id, mean rating, text) per line; malformed lines fail, since the file is fixed upstream."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise DataError(path, f"expected `id<TAB>rating<TAB>text`, got {len(fields)} field(s)", line=lineno)
            try:
                rows.append((int(fields[0]), float(fields[1]), "\t".join(fields[2:]).strip()))
            except ValueError as err:
                raise DataError(path, f"bad id or rating ({err})", line=lineno) from err
    if not rows:
        raise DataError(path, "no snippets", hint=HINT)
    return rows
