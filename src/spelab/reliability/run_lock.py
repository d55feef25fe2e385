"""One process per run dir: a second launch of the same cell (a double submit, two shells) must not
train into the same checkpoints and results.json as the first.

The lock is an exclusive `flock` on `<run dir>/.lock`, which also records the holder's pid, host and
start time for the message. The kernel drops a flock when its holder dies (kill -9, OOM, node reboot
for a local disk), so a lock left by a dead process is taken over without any guessing; the file's
old contents then name the dead holder in a log line. (On NFS, flock is mapped to POSIX locks by the
Linux client and released by the server when the holder's host stops renewing them.)
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from pathlib import Path

from spelab.errors import SpelabError

LOCK_NAME = ".lock"


class RunLockedError(SpelabError, RuntimeError):
    """Another live process holds the run dir."""

    def __init__(self, run_dir: str | os.PathLike, holder: dict) -> None:
        who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
        since = f" since {holder['time_utc']}" if holder.get("time_utc") else ""
        msg = (
            f"run dir {os.fspath(run_dir)} is in use by {who}{since} (the same cell launched twice?). "
            f"Wait for it to finish, or add lock_wait=true to wait for it and then continue its run"
        )
        super().__init__(msg, run_dir, holder)
        self.run_dir, self.holder = os.fspath(run_dir), holder


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """`with RunLock(run_dir, wait=False): ...` -- or acquire()/release()."""

    def __init__(self, run_dir: str | os.PathLike, wait: bool = False) -> None:
        self.run_dir, self.wait = Path(run_dir), wait
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self.previous_holder: dict = {}

    def acquire(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(self.path)
                if not self.wait:
                    raise RunLockedError(self.run_dir, holder) from None
                print(
                    f"[spelab] waiting for pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
                    f"to release {self.run_dir} (lock_wait=true)",
                    flush=True,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.previous_holder = _read_holder(self.path)
        if self.previous_holder.get("pid") not in (None, os.getpid()):
            print(
                f"[spelab] took over the lock of {self.run_dir} left by pid {self.previous_holder.get('pid')} "
                f"on host {self.previous_holder.get('host')} (no longer running)",
                flush=True,
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:  # leave the file: removing it would race with a waiter that opened it already
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
