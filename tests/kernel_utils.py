"""The Triton kernels in Triton's interpreter (CPU tensors), for the tests.

Triton decides at import time (`@triton.jit`) whether a kernel is compiled or interpreted, for its own
helpers (triton.language) too: conftest.py sets TRITON_INTERPRET=1 before anything imports triton on
a machine without CUDA, and the kernel module is (re)imported with it. Without triton the tests
skip, except with CI=true (tests/ci_components.py; .ci/run installs the `gpu` extra): they fail.
"""

from __future__ import annotations

import importlib

import pytest

from ci_components import in_ci


def interpreted_kernels(monkeypatch, module: str = "spelab.nn.kernels.sine_triton"):
    """`module` imported with its kernels in interpreter mode (TRITON_INTERPRET=1 for the test)."""
    try:
        import triton  # noqa: F401
        from triton.language import standard
    except ImportError:
        if in_ci():
            pytest.fail("CI=true requires triton, but it is not installed (make install-gpu-extra)")
        pytest.skip("triton is not installed (optional: pip install '.[gpu]'; CI installs it)")
    if type(standard.zeros).__name__ != "InterpretedFunction":
        pytest.skip(
            "triton was imported without TRITON_INTERPRET=1 (a CUDA machine: conftest.py leaves it "
            "compiled; run with TRITON_INTERPRET=1 to interpret the kernels)"
        )
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    mod = importlib.import_module(module)
    if not any(type(v).__name__ == "InterpretedFunction" for v in vars(mod).values()):
        mod = importlib.reload(mod)  # first imported for a GPU: interpret it now
    return mod
