"""Check up front that the run's output directory can be created and written, and turn the OS errors
of a full or read-only disk met later into one clear OutputDirError."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from spelab.errors import OutputDirError

PROBE_NAME = ".spelab-write-probe"
DEFAULT_MIN_FREE_MB = 50  # a small model's checkpoints, logs and results fit comfortably
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent of the path is a file",
}


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the filesystem holding `path` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _describe(err: OSError, path: str | os.PathLike | None = None) -> str:
    what = _DISK_ERRNOS.get(err.errno or -1, err.strerror or type(err).__name__)
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT) and (err.filename or path):  # which disk to clean up
        what += f" of the filesystem mounted at {mount_point(err.filename or path)}"
    return f"{what}{where}"


def check_output_dir(
    path: str | os.PathLike, min_free_mb: float = DEFAULT_MIN_FREE_MB, probe_bytes: int = 64 * 1024
) -> Path:
    """Create `path` if needed and prove it writable by writing, fsyncing and deleting a probe file.

    Raises OutputDirError (naming the directory and the reason) when the directory cannot be created,
    is not writable, or has less than `min_free_mb` MiB free. Returns the resolved path.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputDirError(path, "it exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirError(path, f"cannot create it: {_describe(err)}") from err
    probe = path / f"{PROBE_NAME}.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OutputDirError(path, f"cannot write a file in it: {_describe(err)}") from err
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free_mb = shutil.disk_usage(path).free / 2**20
    if free_mb < min_free_mb:
        raise OutputDirError(
            path,
            f"only {free_mb:.1f} MiB free on its disk, at least {min_free_mb:g} MiB needed for checkpoints and logs",
        )
    return path.resolve()


def disk_error_as_output_dir_error(err: BaseException, path: str | os.PathLike) -> OutputDirError | None:
    """The OutputDirError for an OSError of a full/read-only/forbidden disk (also when wrapped), else None."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OutputDirError):
            return cur
        if isinstance(cur, OSError) and cur.errno in _DISK_ERRNOS:
            return OutputDirError(path, f"writing failed: {_describe(cur, path)}")
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


@contextlib.contextmanager
def disk_errors_as_output_dir_errors(path: str | os.PathLike) -> Iterator[None]:
    """`with disk_errors_as_output_dir_errors(run_dir): trainer.fit(...)` -> OutputDirError on ENOSPC etc."""
    try:
        yield
    except OutputDirError:
        raise
    except Exception as err:
        clear = disk_error_as_output_dir_error(err, path)
        if clear is None:
            raise
        raise clear from err


def _hydra_callback_base() -> type:
    try:
        from hydra.experimental.callback import Callback

        return Callback
    except ImportError:  # pragma: no cover - hydra is a dependency
        return object


class HydraOutputDirCheck(_hydra_callback_base()):  # type: ignore[misc]
    """Hydra callback (conf/hydra/default.yaml `callbacks:`) checking the run/sweep dir *before* Hydra
    creates it, so an unwritable or full disk ends with one clear line instead of a pathlib traceback
    from inside Hydra. Exits with status 1 after printing the message."""

    def __init__(self, min_free_mb: float = DEFAULT_MIN_FREE_MB) -> None:
        self.min_free_mb = min_free_mb

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    def _check(self, config: Any, key: str) -> None:
        import sys

        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        try:
            HydraConfig.instance().set_config(config)  # so ${hydra:runtime.choices...} resolves
            path = OmegaConf.select(config, key)
        except Exception:  # an unresolvable dir is Hydra's to report
            return
        if not path:
            return
        try:
            check_output_dir(path, min_free_mb=self.min_free_mb)
        except OutputDirError as err:
            print(f"Error: {err}", file=sys.stderr)
            sys.exit(1)
