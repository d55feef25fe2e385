"""The same cell launched twice at once: the second launch exits at once naming the run dir and the
holder, or waits with lock_wait=true; a lock whose holder died (kill -9) is taken over.

Unit tests use real processes holding a real flock; the end-to-end test runs `python run.py` three
times on one run dir and synchronises on the pause marker and on log lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from spelab.reliability import run_lock
from spelab.reliability.run_lock import LOCK_NAME, RunLock, RunLockedError

from .e2e import LONG_SMOKE, cli, popen, results
from .test_e2e_preemption import popen_logged, wait_for_file

# loads run_lock.py alone (spelab.reliability's __init__ would import torch and Lightning: seconds)
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod.RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def _holder(run_dir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir), run_lock.__file__], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_fails_naming_dir_pid_and_host(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunLockedError) as info:
            RunLock(tmp_path).acquire()
        msg = str(info.value)
        assert str(tmp_path) in msg and f"pid {holder.pid}" in msg and socket.gethostname() in msg
        assert "lock_wait=true" in msg
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_holder_is_taken_over(tmp_path, capsys):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"left by pid {holder.pid}" in capsys.readouterr().out


def test_waiting_lock_gets_it_when_the_holder_ends(tmp_path):
    holder = _holder(tmp_path)
    got = threading.Event()

    def wait_for_lock():
        with RunLock(tmp_path, wait=True):
            got.set()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    assert not got.is_set()  # the holder is alive: the waiter cannot have it
    holder.kill()
    holder.wait()
    t.join(timeout=120)
    assert got.is_set()


@pytest.mark.slow
def test_double_launch_end_to_end(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    args = LONG_SMOKE + ["trainer.max_steps=6", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    first = popen_logged(args + ["pause_at_steps=[4]"], tmp_path / "first.log")
    waiter = None
    try:
        wait_for_file(run_dir / "PAUSED_AT_STEP_4", first)
        second = cli(args)  # a double submit: exits at once, writing nothing into the run dir
        assert second.returncode != 0
        assert f"run dir {run_dir} is in use by pid {first.pid} on host {socket.gethostname()}" in second.stderr, (
            second.stderr[-2000:]
        )
        assert "Traceback" not in second.stderr
        assert not (run_dir / "results.json").exists(), "the second launch wrote results.json"
        waiter = popen(args + ["lock_wait=true"])
        for line in waiter.stdout:  # synchronise on its log line: it is now blocked on the lock
            if "waiting for pid" in line:
                break
        else:
            raise AssertionError("the waiting launch ended without waiting")
        first.send_signal(signal.SIGKILL)  # the holder dies without releasing anything itself
        first.wait()
        out = waiter.stdout.read()
        assert waiter.wait(timeout=300) == 0, out[-3000:]
    finally:
        for p in (first, waiter):
            if p is not None and p.poll() is None:
                p.kill()
    assert f"took over the lock of {run_dir} left by pid {first.pid}" in out
    assert "resuming from" in out  # and continued the dead launch's run
    assert results(run_dir)["status"] == "done"
