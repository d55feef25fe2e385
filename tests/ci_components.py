"""In CI a real component the suite needs must be there: a skipped test that needs one fails.

A test marked `needs("<component>")` (the SLURM tests through their `slurm` marker) may skip on a
developer's machine that lacks the component, with the reason printed (`-ra`). With `CI=true` the same
skip is turned into a failure naming the component, so a green CI run has exercised it. Loaded by
tests/conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

import os

import pytest

TRUE = ("1", "true", "yes")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(component): the test exercises a real component (e.g. a tmpfs it mounts); "
        "it may skip without it, except with CI=true where the skip is a failure naming the component",
    )


def component_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("needs")
    if marker is not None:
        return str(marker.args[0])
    if item.get_closest_marker("slurm") is not None:
        return "SLURM"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    component = component_of(item)
    if component is None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true requires {component}, but this test skipped: {reason}\n"
        f"(on a developer's machine this stays a skip; in CI install/start {component})"
    )
