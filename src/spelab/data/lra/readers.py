"""Readers for the files of the LRA release (`lra_release.gz`) in their official layout.

The release unpacks to `lra_release/` and often to `lra_release/lra_release/`; every reader accepts
the directory given, or either of those below it, and names all the places it looked when the data
is not there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from spelab.errors import DataError, MissingDataError, SkippedRecords

log = logging.getLogger(__name__)

LRA_HINT = (
    "download the LRA release (https://storage.googleapis.com/long-range-arena/lra_release.gz, "
    "~7 GB), unpack it with `tar xvf lra_release.gz`, and set task.datamodule.data_dir (or "
    "task.datamodule.lra_dir) to the directory that holds `lra_release/`; or run with "
    "task.datamodule.source=offline for the offline stand-in"
)


def lra_roots(*dirs: str | os.PathLike | None) -> list[Path]:
    """Each given dir, then `lra_release/` and `lra_release/lra_release/` below it."""
    roots: list[Path] = []
    for d in dirs:
        if d is None:
            continue
        d = Path(d).expanduser()
        for r in (d, d / "lra_release", d / "lra_release" / "lra_release"):
            if r not in roots:
                roots.append(r)
    return roots


def find_in_release(relative: str, *dirs: str | os.PathLike | None, hint: str = LRA_HINT) -> Path:
    """The first `<root>/<relative>` that exists among `lra_roots(*dirs)`; else MissingDataError."""
    tried = [r / relative for r in lra_roots(*dirs)]
    for path in tried:
        if path.exists():
            return path
    raise MissingDataError(
        tried[0] if tried else relative,
        f"`{relative}` not found; looked in: " + ", ".join(str(p) for p in tried),
        hint=hint,
    )


# ----------------------------------------------------------------------------------------- AAN
def read_aan_tsv(path: str | os.PathLike, max_text_bytes: int | None = 10_000) -> Iterator[tuple[int, str, str]]:
    """Rows `(label, text1, text2)` of `new_aan_pairs.<split>.tsv`.

    Format: no header, 5 tab-separated columns `label id1 id2 text1 text2`, the label a float
    ("1.0"), no quoting at all (quote characters are text, as tf's `use_quote_delim=False`).
    Malformed rows are skipped and counted. Each text is cut to `max_text_bytes` UTF-8 bytes, as LRA does
    before it cuts each document to the model length.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, "AAN pairs file not found", hint=LRA_HINT)
    skipped = SkippedRecords(path)
    total = 0
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            total += 1
            fields = line.split("\t")
            if len(fields) != 5:
                skipped.add(lineno, f"expected 5 tab-separated fields, got {len(fields)}")
                continue
            try:
                label = int(float(fields[0]))
            except (ValueError, OverflowError):  # "x", "nan", "inf", "1e400"
                skipped.add(lineno, "label is not a finite number")
                continue
            if label not in (0, 1):
                skipped.add(lineno, f"label {label} not in {{0, 1}}")
                continue
            text1, text2 = fields[3], fields[4]
            if max_text_bytes is not None:
                text1 = text1.encode("utf-8")[:max_text_bytes].decode("utf-8", errors="ignore")
                text2 = text2.encode("utf-8")[:max_text_bytes].decode("utf-8", errors="ignore")
            if not text1 or not text2:
                skipped.add(lineno, "empty document")
                continue
            yield label, text1, text2
    if skipped.count:
        skipped.check(total)
        log.warning(skipped.summary(total))


# ----------------------------------------------------------------------------------- Pathfinder
def read_pathfinder_metadata(split_dir: str | os.PathLike) -> list[tuple[str, int]]:
    """(image path relative to `split_dir`, label) for every line of `metadata/*.npy`.

    The `.npy` files are plain text despite the name: one image per line,
    `imgs/<batch> sample_<i>.png <index> <label> ...` (LRA's TFDS builder reads m[0], m[1], m[3]).
    Files are read in numeric batch order, so the result does not depend on directory listing order.
    """
    split_dir = Path(split_dir)
    meta_dir = split_dir / "metadata"
    if not meta_dir.is_dir() or not (split_dir / "imgs").is_dir():
        missing = meta_dir if not meta_dir.is_dir() else split_dir / "imgs"
        raise MissingDataError(
            missing,
            "Pathfinder layout needs `imgs/<batch>/sample_<i>.png` and `metadata/<batch>.npy` under " + str(split_dir),
            hint=LRA_HINT,
        )
    files = sorted(
        meta_dir.glob("*.npy"), key=lambda p: (not p.stem.isdigit(), int(p.stem) if p.stem.isdigit() else 0, p.stem)
    )
    if not files:
        raise MissingDataError(meta_dir, "no metadata/*.npy files", hint=LRA_HINT)
    rows: list[tuple[str, int]] = []
    for meta in files:
        skipped = SkippedRecords(meta)
        n = 0
        with open(meta, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                n += 1
                if len(fields) < 4 or fields[3] not in ("0", "1"):
                    skipped.add(lineno, "expected `subdir file index label ...` with label 0/1")
                    continue
                rows.append((f"{fields[0]}/{fields[1]}", int(fields[3])))
        if skipped.count:
            log.warning(skipped.summary(n))
    return rows


def read_gray_png(path: str | os.PathLike, size: int) -> tuple[np.ndarray | None, str | None]:
    """(uint8 (size, size) image, None) or (None, why it was skipped): empty, unreadable, wrong size."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return None, "empty file"
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        return None, "missing file"
    except Exception:  # PIL raises many types for truncated/corrupt files
        return None, "unreadable image"
    if arr.shape != (size, size):
        return None, f"size {arr.shape[1]}x{arr.shape[0]} != {size}x{size}"
    return arr, None


def read_pathfinder_images(
    split_dir: str | os.PathLike, size: int, rows: Iterable[tuple[str, int]] | None = None
) -> tuple[np.ndarray, np.ndarray, SkippedRecords]:
    """All readable images of a Pathfinder difficulty directory: (uint8 (M, size*size), labels (M,), skipped)."""
    split_dir = Path(split_dir)
    rows = list(rows) if rows is not None else read_pathfinder_metadata(split_dir)
    skipped = SkippedRecords(split_dir)
    images, labels = [], []
    for i, (rel, label) in enumerate(rows):
        arr, why = read_gray_png(split_dir / rel, size)
        if arr is None:
            skipped.add(None, f"{why}")
            if len(skipped.lines) <= 5:
                log.debug("Skipping %s: %s", split_dir / rel, why)
            continue
        images.append(arr.reshape(-1))
        labels.append(label)
    if skipped.count:
        skipped.check(len(rows))
        log.warning(skipped.summary(len(rows)))
    if not images:
        raise DataError(split_dir, "no readable images")
    return np.stack(images), np.asarray(labels, dtype=np.int64), skipped
