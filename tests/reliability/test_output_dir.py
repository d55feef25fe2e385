"""Output dir problems are one clear OutputDirError, found before any training."""

from __future__ import annotations

import errno
import os

import pytest

from spelab.errors import OutputDirError
from spelab.reliability.output_dir import check_output_dir, disk_errors_as_output_dir_errors


def test_creates_and_probes_a_writable_dir(tmp_path):
    out = check_output_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []  # the probe is gone


def test_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError) as info:
        check_output_dir(tmp_path / "file" / "run")
    assert str(tmp_path / "file" / "run") in str(info.value) and "cannot create" in str(info.value)


def test_path_is_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        check_output_dir(tmp_path / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only-mode dirs")
def test_read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputDirError, match="permission denied"):
            check_output_dir(ro / "run")
    finally:
        ro.chmod(0o700)


def test_unwritable_dir_simulated(tmp_path, monkeypatch):
    # works as root too: the OS refusal is simulated at the open() of the probe
    real_open = open

    def refuse(path, *a, **k):
        if ".spelab-write-probe" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(OutputDirError) as info:
        check_output_dir(tmp_path / "run")
    assert "permission denied" in str(info.value) and str(tmp_path / "run") in str(info.value)


def test_too_little_free_space(tmp_path):
    with pytest.raises(OutputDirError, match=r"MiB free"):
        check_output_dir(tmp_path, min_free_mb=1e15)


def test_full_disk_during_training_becomes_clear_error(tmp_path):
    with pytest.raises(OutputDirError) as info:
        with disk_errors_as_output_dir_errors(tmp_path):
            try:
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.ckpt"))
            except OSError as err:
                raise RuntimeError("deep inside a library") from err
    assert "no space left" in str(info.value) and str(tmp_path) in str(info.value)


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(ValueError, match="unrelated"):
        with disk_errors_as_output_dir_errors(tmp_path):
            raise ValueError("unrelated")
    with pytest.raises(FileNotFoundError):
        with disk_errors_as_output_dir_errors(tmp_path):
            open(tmp_path / "missing")
