"""Atomic checkpoint writes: a crash (kill -9, power loss, full disk) while saving never leaves a
truncated `last.ckpt`; the previous file stays until the new one is complete on disk.

Lightning's own `_atomic_save` serialises to memory first but then overwrites the target in place,
so a kill during the write still truncates it. Here the bytes go to a temporary file in the same
directory (same filesystem, so the rename is atomic), are flushed and fsynced, and only then
`os.replace`d over the target; the directory is fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from spelab.errors import OutputDirError
from spelab.reliability import ckpt_fallback

TMP_PREFIX = ".tmp-"  # temporary files are hidden and never match *.ckpt globs


class _HashingWriter:
    """A write-only file wrapper that hashes the bytes on their way to disk (no second read)."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha = f, hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` atomically (temp file + fsync + os.replace). A `last.ckpt` also gets a
    SHA-256 file and the one it replaces is kept as `last.ckpt.prev` (ckpt_fallback.py)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}"
    keep = ckpt_fallback.keeps_previous(path)
    sums = ckpt_fallback.checksum_path(path)
    tmp_sum = path.parent / f"{TMP_PREFIX}{sums.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            writer = _HashingWriter(f)
            torch.save(obj, writer)
            f.flush()
            os.fsync(f.fileno())
        if keep:
            tmp_sum.write_text(f"{writer.sha.hexdigest()}  {path.name}\n")
            ckpt_fallback.keep_previous(path)
            # checksum first: a crash in between leaves a mismatch, i.e. a fallback to the previous one
            os.replace(tmp_sum, sums)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        _remove_quietly(tmp)
        _remove_quietly(tmp_sum)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            from spelab.reliability.output_dir import mount_point

            raise OutputDirError(
                path.parent,
                f"no space left on the device (the filesystem mounted at "
                f"{mount_point(path.parent)}) while writing checkpoint "
                f"{path.name} ({err.strerror}); the previous checkpoint, if any, is intact",
                hint="Free disk space (or use paths.log_dir=... on a larger disk) and rerun the same command to resume",
            ) from err
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OutputDirError(path.parent, f"cannot write checkpoint {path.name} ({err.strerror})") from err
        raise
    except BaseException:  # KeyboardInterrupt, pickling errors: never leave the temp file behind
        _remove_quietly(tmp)
        _remove_quietly(tmp_sum)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete temp files left by a process killed while saving; returns what was removed."""
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for tmp in directory.glob(f"{TMP_PREFIX}*"):
            _remove_quietly(tmp)
            removed.append(tmp)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO plugin: `Trainer(plugins=[AtomicCheckpointIO()])`.

    Loading is unchanged (TorchCheckpointIO). Only local paths are written atomically; remote URLs
    (s3://, ...) fall back to Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)
