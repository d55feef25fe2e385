"""Which implementation runs the fused kernels: `SPELAB_KERNELS=auto|torch|triton|cpp` (or the config key
`kernels`, which sets the same variable so that worker processes inherit it).

- torch: the PyTorch paths (the reference).
- triton: the Triton kernels. They need CUDA tensors, or `TRITON_INTERPRET=1` (Triton's interpreter,
  which runs them on CPU tensors, orders of magnitude slower: for tests). Raises when triton is absent.
- cpp: the compiled CPU kernels of sineSPE's shared codes (cpu.py, sine_cpu.cpp), float32 CPU tensors
  with R a multiple of 16 (others take the PyTorch paths). Raises when they cannot be built, or on a
  CUDA tensor.
- auto (default): Triton for CUDA tensors when triton is installed; the compiled kernels for CPU
  tensors when they build (one warning, then PyTorch, when they do not); PyTorch everywhere else.

Triton is an optional dependency (`pip install ".[gpu]"`); nothing here imports it unless it is used.
"""

from __future__ import annotations

import importlib.util
import os

import torch

MODES = ("auto", "torch", "triton", "cpp")
ENV = "SPELAB_KERNELS"
# tl.dot runs on these; float64 (the reference precision) always takes the PyTorch path
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def kernel_mode() -> str:
    """The current mode, from SPELAB_KERNELS (default auto); a bad value fails with what is allowed."""
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV}={os.environ.get(ENV)!r}: must be one of {'|'.join(MODES)}")
    return mode


def set_kernel_mode(mode: str) -> None:
    """Select the implementation for this process and its children (the config key `kernels`)."""
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ValueError(f"kernels: must be one of {'|'.join(MODES)}, got {mode!r}")
    os.environ[ENV] = mode.strip().lower()


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def use_triton(x: torch.Tensor) -> bool:
    """Whether the Triton kernels handle tensor x under the current mode."""
    mode = kernel_mode()
    if mode in ("torch", "cpp") or x.dtype not in TRITON_DTYPES:
        return False
    if mode == "auto":
        return x.is_cuda and triton_available()
    if not triton_available():
        raise RuntimeError(f"{ENV}=triton but triton is not installed: pip install '.[gpu]' (or use {ENV}=auto|torch)")
    if not x.is_cuda and not interpreting():
        raise RuntimeError(
            f"{ENV}=triton on a {x.device.type} tensor: the kernels need CUDA tensors, or "
            f"TRITON_INTERPRET=1 to run them in Triton's interpreter on the CPU"
        )
    return True


def cpu_kernels(x: torch.Tensor, width: int):
    """The compiled CPU kernels (a module) when they handle tensor x with codes of width R under the
    current mode, else None (the PyTorch paths)."""
    mode = kernel_mode()
    if mode in ("torch", "triton"):
        return None
    if x.device.type != "cpu":
        if mode == "cpp":
            raise RuntimeError(
                f"{ENV}=cpp on a {x.device.type} tensor: the compiled kernels run on the CPU; use {ENV}=auto "
                f"(Triton on CUDA) or torch"
            )
        return None
    if x.dtype != torch.float32 or width % 16:
        return None
    from spelab.nn.kernels.cpu import load_cpu_kernels

    return load_cpu_kernels(required=mode == "cpp")
