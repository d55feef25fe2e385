"""The compiled CPU kernels of the shared SPE codes (sine_cpu.cpp), built on first use.

torch.utils.cpp_extension compiles the C++ file once per machine (about 40 s on 2 cores) into
torch's extension cache (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions) and loads the cached
library afterwards (a changed source rebuilds). It needs a C++ compiler and ninja (the `ninja` package,
a dependency); where the build fails, `auto` warns once and keeps the PyTorch paths.

The code is compiled for the building machine's CPU (-march=native, for its vector width), so the
library's name carries a digest of that CPU's model and flags: nodes of a cluster that share a home
directory but differ in CPU each build their own, instead of loading one that may stop on an
illegal instruction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("sine_cpu.cpp")
FLAGS = ["-O3", "-march=native", "-fopenmp"]  # OpenMP: at::parallel_for runs on torch's threads
log = logging.getLogger(__name__)

_module: ModuleType | None = None
_error: BaseException | None = None


def cpu_signature() -> str:
    """A digest of this machine's CPU (architecture, model, instruction-set flags)."""
    parts = [platform.machine(), platform.processor()]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "flags", "Features", "CPU part"):
                parts.append(line)
                if key in ("flags", "Features"):
                    break  # the first processor's lines are enough
    except OSError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def extension_name() -> str:
    return f"spelab_sine_cpu_{cpu_signature()}"


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    try:  # the `ninja` package's binary, for a virtual environment that is not activated
        import ninja

        if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    name = extension_name()
    directory = build_directory(name)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / f"{name}.so").exists():
        print(f"spelab: compiling the CPU kernels of sineSPE ({SOURCE.name}), once per machine", file=sys.stderr)
    return cpp_extension.load(
        name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, build_directory=str(directory), verbose=False
    )


def build_directory(name: str) -> Path:
    """<TORCH_EXTENSIONS_DIR or torch's default>/spelab/torch-<version>/<name>: a new torch rebuilds."""
    import torch
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / "spelab" / f"torch-{torch.__version__}" / name


def load_cpu_kernels(required: bool) -> ModuleType | None:
    """The compiled module; None (after one warning) when it cannot be built and not `required`."""
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = _build()
        except Exception as error:  # a missing compiler or ninja, a failed compilation
            _error = error
    if _module is not None:
        return _module
    message = (
        f"spelab: the compiled CPU kernels (nn/kernels/{SOURCE.name}) could not be built: "
        f"{type(_error).__name__}: {str(_error).strip()[-600:]}\nThey need a C++ compiler and ninja "
        f"(pip install ninja)."
    )
    if required:
        raise RuntimeError(message + " Or use SPELAB_KERNELS=auto|torch for the PyTorch paths.")
    if not getattr(load_cpu_kernels, "_warned", False):
        load_cpu_kernels._warned = True
        warnings.warn(message + " Using the PyTorch paths (slower).", RuntimeWarning, stacklevel=3)
    return None


if __name__ == "__main__":  # `python -m spelab.nn.kernels.cpu`: build now (make install), say where
    module = load_cpu_kernels(required=False)
    if module is not None:
        print(f"spelab: compiled CPU kernels ready: {module.__file__}")
