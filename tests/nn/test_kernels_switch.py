"""SPELAB_KERNELS / the config key `kernels`: which implementation runs, and clear errors."""

from __future__ import annotations

import os

import pytest
import torch

from spelab.nn import kernels


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SPELAB_KERNELS", raising=False)
    assert kernels.kernel_mode() == "auto"
    for mode in kernels.MODES:
        monkeypatch.setenv("SPELAB_KERNELS", mode.upper())
        assert kernels.kernel_mode() == mode


def test_a_bad_mode_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("SPELAB_KERNELS", "cuda")
    with pytest.raises(ValueError, match=r"SPELAB_KERNELS='cuda': must be one of auto\|torch\|triton\|cpp"):
        kernels.kernel_mode()
    with pytest.raises(ValueError, match=r"kernels: must be one of auto\|torch\|triton\|cpp, got 'fast'"):
        kernels.set_kernel_mode("fast")


def test_set_kernel_mode_sets_the_variable_for_child_processes(monkeypatch):
    monkeypatch.setenv("SPELAB_KERNELS", "auto")
    kernels.set_kernel_mode("torch")
    assert os.environ["SPELAB_KERNELS"] == "torch" and kernels.kernel_mode() == "torch"


def test_cpu_tensors_take_the_pytorch_path_unless_triton_is_asked_for(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    for mode in ("auto", "torch", "cpp"):
        monkeypatch.setenv("SPELAB_KERNELS", mode)
        assert not kernels.use_triton(x)
    monkeypatch.setenv("SPELAB_KERNELS", "triton")
    assert not kernels.use_triton(x.double())  # the float64 reference always runs in PyTorch
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    with pytest.raises(RuntimeError, match="need CUDA tensors, or TRITON_INTERPRET=1"):
        kernels.use_triton(x)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernels.use_triton(x)
    monkeypatch.setattr(kernels, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"triton is not installed: pip install '.\[gpu\]'"):
        kernels.use_triton(x)
