"""The Triton kernels in Triton's interpreter (CPU tensors), for the tests.

Triton decides at import time (`@triton.jit`) whether a kernel is compiled or interpreted, for its own
helpers (triton.language) too: triton is first imported with TRITON_INTERPRET=1 (left set: on a CPU
machine nothing else runs Triton), and the kernel module is (re)imported with it. Without triton the tests skip, except under
SPELAB_REQUIRE_TRITON=1 (set by .ci/run, which installs the `gpu` extra), where they fail.
"""

from __future__ import annotations

import importlib
import os

import pytest


def interpreted_kernels(monkeypatch, module: str = "spelab.nn.kernels.sine_triton"):
    """`module` imported with its kernels in interpreter mode (TRITON_INTERPRET=1 for the test)."""
    import sys

    if "triton" not in sys.modules:  # triton.language's own helpers are jit functions: interpret them too
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton  # noqa: F401
        from triton.language import standard
    except ImportError:
        if os.environ.get("SPELAB_REQUIRE_TRITON") == "1":
            pytest.fail("SPELAB_REQUIRE_TRITON=1 but triton is not installed (make install-gpu-extra)")
        pytest.skip("triton is not installed (optional: pip install '.[gpu]'; CI installs it)")
    if type(standard.zeros).__name__ != "InterpretedFunction":
        pytest.skip("triton was imported in this process before TRITON_INTERPRET=1 was set (run this file alone)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    mod = importlib.import_module(module)
    if not any(type(v).__name__ == "InterpretedFunction" for v in vars(mod).values()):
        mod = importlib.reload(mod)  # first imported for a GPU: interpret it now
    return mod
