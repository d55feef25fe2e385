"""CI cannot pass while a component the suite needs is missing: `.ci/run` fails naming SLURM when it
cannot start, and with CI=true a test marked `needs(...)`/`slurm` that skips is a failure. On a
developer's machine both stay skips with the reason printed. Runs a stub tree / a stub test file in
subprocesses, so the shared SLURM cluster is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(ci: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return env


@pytest.fixture
def ci_tree(tmp_path: Path) -> Path:
    """A copy of .ci/run beside a start.sh that cannot start SLURM and a Makefile that only records."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "scripts" / "slurm").mkdir(parents=True)
    (tmp_path / "scripts" / "slurm" / "start.sh").write_text(
        "echo 'slurm/start.sh: slurmctld failed to start' >&2; exit 1\n"
    )
    (tmp_path / "Makefile").write_text("%:\n\techo ran-$@ >> made.txt\n")  # every target .ci/run makes
    return tmp_path


def test_ci_run_fails_naming_slurm_when_it_cannot_start(ci_tree: Path) -> None:
    out = subprocess.run(["bash", str(ci_tree / ".ci" / "run")], env=_env("true"), capture_output=True, text=True)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "SLURM could not be started" in out.stderr and "CI=true requires it" in out.stderr
    assert not (ci_tree / "made.txt").exists()  # no test suite ran


def test_ci_run_goes_on_without_slurm_on_a_developer_machine(ci_tree: Path) -> None:
    out = subprocess.run(["bash", str(ci_tree / ".ci" / "run")], env=_env(None), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SLURM could not be started" in out.stdout and "will skip" in out.stdout
    made = (ci_tree / "made.txt").read_text().split()
    assert made[-2:] == ["ran-test", "ran-test-slow"], made  # both suites, last, after the install steps


STUB_TESTS = """
import pytest

@pytest.mark.slurm
def test_needs_slurm():
    pytest.skip("no sinfo here")

@pytest.mark.needs("a tmpfs mount")
def test_needs_tmpfs():
    pytest.skip("not root")

def test_plain_skip():
    pytest.skip("optional peer library missing")
"""


@pytest.mark.parametrize("ci", [None, "true"])
def test_skip_of_a_needed_component_fails_only_in_ci(tmp_path: Path, ci: str | None) -> None:
    (tmp_path / "test_stub.py").write_text(STUB_TESTS)
    env = _env(ci)
    env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a bare pytest starts faster
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-ra",
            "-p",
            "ci_components",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    text = out.stdout + out.stderr
    if ci is None:
        assert out.returncode == 0 and "3 skipped" in text, text
        assert "no sinfo here" in text and "not root" in text  # the reason is printed
    else:
        assert out.returncode == 1 and "2 failed, 1 skipped" in text, text
        assert "CI=true requires SLURM, but this test skipped: no sinfo here" in text
        assert "CI=true requires a tmpfs mount, but this test skipped: not root" in text
