"""`import spelab.nn` loads nn only (no Lightning, Hydra, data or training code, no matplotlib), and
every exported name resolves, `plot_kernels` on first use."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import spelab.nn as nn
banned = ("lightning", "pytorch_lightning", "hydra", "omegaconf", "spelab.data", "spelab.tasks", "matplotlib")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith(banned))
assert not loaded, loaded[:5]
for name in nn.__all__:
    assert getattr(nn, name) is not None, name
assert "matplotlib" in sys.modules  # plot_kernels was resolved on first use
try:
    nn.not_a_name
except AttributeError as err:
    assert "not_a_name" in str(err)
else:
    raise AssertionError("unknown names must raise AttributeError")
"""


def test_import_spelab_nn_loads_nn_only_and_exports_resolve():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
