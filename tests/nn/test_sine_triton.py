"""The fused Triton sineSPE kernels (nn/kernels/sine_triton.py) against the float64 PyTorch reference,
forward and backward, in Triton's interpreter on CPU tensors (small sizes: the interpreter is slow).
Odd sizes on purpose: N spans several position blocks with a ragged last one, K and R are padded to
the tl.dot tiles. On a GPU (`-m gpu`, run by `make gpu-check`) the same checks allow tf32's error."""

from __future__ import annotations

import copy

import pytest
import torch

from kernel_utils import interpreted_kernels
from spelab.nn.positional.sine_spe import SineCode, SineSPE, sine_project

INTERPRETER_TOL = 1e-4  # fp32 dots in the interpreter
GPU_TOL = 1e-2  # tf32 tl.dot on a GPU (10-bit mantissa), relative to each tensor's scale


def _close(got: torch.Tensor, ref: torch.Tensor, tol: float, what: str) -> None:
    err = (got.double() - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} x scale {scale:.3g}"


def _check_projection(project, device, tol, batch, n, heads, dim, sines, reals, offset, phase_on, dtype):
    g = torch.Generator().manual_seed(n + sines)
    x = torch.randn(batch, n, heads, dim, generator=g, dtype=torch.float64)
    freq = torch.rand(heads, dim, sines, generator=g, dtype=torch.float64) / 2
    phase = torch.randn(heads, dim, sines, generator=g, dtype=torch.float64) if phase_on else None
    weight = torch.randn(heads, dim, 2 * sines, reals, generator=g, dtype=torch.float64)
    grad = torch.randn(batch, n, heads, reals, generator=g, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (x, freq, phase, weight) if t is not None]
    ref = sine_project(x, freq, phase, weight, offset, strategy="features")
    ref_grads = torch.autograd.grad(ref, leaves, grad)
    mine = [t.detach().to(device, dtype if i == 0 else torch.float32).requires_grad_() for i, t in enumerate(leaves)]
    args = mine if phase_on else [mine[0], mine[1], None, mine[2]]
    out = project(*args, offset)
    assert out.dtype == dtype and out.shape == ref.shape
    grads = torch.autograd.grad(out, mine, grad.to(device, dtype))
    _close(out.cpu(), ref, tol, "output")
    names = ["dx", "dfreq"] + (["dphase"] if phase_on else []) + ["dweight"]
    for name, got, want in zip(names, grads, ref_grads):
        _close(got.cpu(), want, tol, name)


@pytest.mark.parametrize(
    "phase_on, offset, programs", [(True, 1000, None), (False, 0, 1)], ids=["query-offset", "key-one-segment"]
)
def test_projection_matches_the_float64_reference(monkeypatch, phase_on, offset, programs):
    kern = interpreted_kernels(monkeypatch)
    if programs is not None:  # one backward segment per (feature, head): the segment loop runs 3 blocks
        monkeypatch.setattr(kern, "TARGET_PROGRAMS", programs)
    _check_projection(
        kern.triton_sine_project,
        "cpu",
        INTERPRETER_TOL,
        batch=2,
        n=70,
        heads=2,
        dim=3,
        sines=3,
        reals=5,
        offset=offset,
        phase_on=phase_on,
        dtype=torch.float32,
    )


def test_low_precision_inputs_keep_their_dtype(monkeypatch):
    kern = interpreted_kernels(monkeypatch)
    _check_projection(
        kern.triton_sine_project,
        "cpu",
        3e-2,
        batch=1,
        n=20,
        heads=1,
        dim=2,
        sines=2,
        reals=4,
        offset=5,
        phase_on=True,
        dtype=torch.bfloat16,
    )


def test_gated_module_through_the_kernels_matches_the_float64_module(monkeypatch):
    """SineSPE with SPELAB_KERNELS=triton: q̂, k̂ and the gradients of q, k, frequencies, phases,
    gains and gate, against the same module in float64 on the PyTorch path."""
    kern = interpreted_kernels(monkeypatch)
    calls = []
    real = kern.triton_sine_project
    monkeypatch.setattr(kern, "triton_sine_project", lambda *a: calls.append(a[2] is None) or real(*a))
    torch.manual_seed(0)
    spe = SineSPE(num_heads=2, head_dim=3, num_realizations=6, num_sines=3, gated=True)
    ref_spe = copy.deepcopy(spe).double()
    code = spe.draw(40)
    ref_code = SineCode(noise=code.noise.double(), length=40, gate_noise=code.gate_noise.double())
    q, k = (torch.randn(2, 33, 2, 3, dtype=torch.float64) for _ in range(2))
    grads = [torch.randn(2, 33, 2, 6, dtype=torch.float64) for _ in range(2)]

    def run(module, c, dtype, mode):
        monkeypatch.setenv("SPELAB_KERNELS", mode)
        qq, kk = (t.to(dtype).requires_grad_() for t in (q, k))
        outs = module(qq, kk, code=c, offset=7)
        params = [module.freqs, module.offsets, module.gains, module.gate.gate]
        return outs, torch.autograd.grad(outs, [qq, kk, *params], [g.to(dtype) for g in grads])

    (q_ref, k_ref), ref_grads = run(ref_spe, ref_code, torch.float64, "torch")
    (q_hat, k_hat), my_grads = run(spe, code, torch.float32, "triton")
    assert calls == [False, True], "the module did not go through the Triton kernels (query, then key)"
    _close(q_hat, q_ref, INTERPRETER_TOL, "q̂")
    _close(k_hat, k_ref, INTERPRETER_TOL, "k̂")
    for name, got, want in zip(["dq", "dk", "dfreqs", "doffsets", "dgains", "dgate"], my_grads, ref_grads):
        _close(got, want, INTERPRETER_TOL, name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype, tol", [(torch.float32, GPU_TOL), (torch.bfloat16, 5e-2)], ids=["fp32-tf32", "bf16"])
def test_compiled_kernels_match_the_reference_on_a_gpu(dtype, tol):
    pytest.importorskip("triton", reason="the gpu extra: pip install '.[gpu]'")
    from spelab.nn.kernels.sine_triton import triton_sine_project

    _check_projection(
        triton_sine_project,
        "cuda",
        tol,
        batch=2,
        n=1000,
        heads=2,
        dim=64,
        sines=10,
        reals=64,
        offset=300,
        phase_on=True,
        dtype=dtype,
    )
