"""The last two `last.ckpt`s, each with a SHA-256, so a damaged one is detected and the previous used.

Atomic writes (checkpoint_io.py) stop a crash from truncating `last.ckpt`, but a copy cut short, a
bad disk, a full disk on another tool's copy or a power loss on a filesystem that lies about fsync still
can. torch.load notices truncation, not a damaged byte in the middle. So every `last.ckpt` written
through AtomicCheckpointIO gets `last.ckpt.sha256`, and before it is replaced the current pair is
kept as `last.ckpt.prev` (+ `.sha256`; hard links, no copy). On resume `pick_resume_checkpoint` checks
the checksum (or, for a file without one, that torch can load it) and falls back to the previous with a
warning naming the bad file, which is moved aside as `last.ckpt.corrupt`. When neither is usable it
raises, never training from scratch silently.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from spelab.errors import DataError

log = logging.getLogger(__name__)

LAST_NAME = "last.ckpt"
SUM_SUFFIX = ".sha256"
PREV_SUFFIX = ".prev"
CORRUPT_SUFFIX = ".corrupt"


def keeps_previous(path: str | os.PathLike) -> bool:
    return Path(path).name == LAST_NAME


def checksum_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}{SUM_SUFFIX}")


def previous_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}{PREV_SUFFIX}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _replace_link(src: Path, dst: Path) -> None:
    """Make `dst` another name of `src` atomically (a crash leaves the old `dst` or the new one)."""
    tmp = dst.parent / f".tmp-{dst.name}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.link(src, tmp)
    os.replace(tmp, dst)


def keep_previous(path: str | os.PathLike) -> None:
    """Before `path` is replaced: keep the current file (and its checksum) as the previous one."""
    path = Path(path)
    if not path.is_file():
        return
    _replace_link(path, previous_path(path))
    if checksum_path(path).is_file():
        _replace_link(checksum_path(path), checksum_path(previous_path(path)))
    else:
        checksum_path(previous_path(path)).unlink(missing_ok=True)


def problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint cannot be resumed from (None: it is fine)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    sums = checksum_path(path)
    if sums.is_file():
        expected = sums.read_text().split()[0] if sums.read_text().strip() else ""
        actual = file_sha256(path)
        return None if actual == expected else f"checksum mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
    import torch  # no checksum (written before checksums, or by another tool): can torch read it?

    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        return f"cannot be loaded ({type(err).__name__}: {err})"
    return None


def pick_resume_checkpoint(last: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: `last`, else its previous one (warning, naming the bad file), else
    None when there is none at all. Raises DataError when checkpoints exist but none is usable."""
    last = Path(last)
    prev = previous_path(last)
    if not last.is_file() and not prev.is_file():
        return None
    bad_last = problem(last) if last.is_file() else "missing"
    if bad_last is None:
        return last
    bad_prev = problem(prev) if prev.is_file() else "missing"
    if last.is_file():
        aside = Path(f"{last}{CORRUPT_SUFFIX}")
        os.replace(last, aside)  # never picked again, kept for a post-mortem
        checksum_path(last).unlink(missing_ok=True)
        where = f"{last} is damaged ({bad_last}; moved to {aside.name})"
    else:
        where = f"{last} is missing"
    if bad_prev is None:
        msg = f"{where}; resuming from the previous checkpoint {prev} instead"
        log.warning(msg)
        print(f"[spelab] WARNING: {msg}", flush=True)
        return prev
    raise DataError(
        last,
        f"no usable checkpoint to resume from: {where}, and the previous one {prev} is {bad_prev}",
        hint="rerun with resume=false (or force=true) to train from scratch",
    )
