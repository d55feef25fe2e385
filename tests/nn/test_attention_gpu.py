"""GPU-only checks: softmax reaches a fused SDPA kernel (never the math fallback), CUDA == CPU for
the kernel backends, and the optional fla path agrees with the PyTorch chunked reference."""

from __future__ import annotations

import pytest
import torch

from spelab.nn.attention import LinearAttention, PerformerAttention, SoftmaxAttention
from spelab.nn.attention.causal_linear import causal_linear_attention, causal_linear_chunked, fla_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _fused_only():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION])


def _flash_only():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def _qkv(b=2, n=256, h=4, d=64, dtype=torch.bfloat16, grad=False):
    q, k, v = (torch.randn(b, n, h, d, device="cuda", dtype=dtype) for _ in range(3))
    if grad:
        for t in (q, k, v):
            t.requires_grad_()
    return q, k, v


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_mask_free_cases_run_flash(dtype, causal) -> None:
    """No padding, or causal with right padding: no mask, so the flash kernel itself must accept it."""
    att = SoftmaxAttention(64).cuda()
    q, k, v = _qkv(dtype=dtype, grad=True)
    no_pad = torch.zeros(2, 256, dtype=torch.bool, device="cuda")
    right_pad = no_pad.clone()
    right_pad[0, 200:] = True
    masks = [None, no_pad] + ([right_pad] if causal else [])
    with _flash_only():
        for m in masks:
            out = att(q, k, v, causal=causal, key_padding_mask=m)
            out.float().sum().backward()  # the backward kernel too
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_padded_runs_a_fused_kernel_and_matches_math(causal) -> None:
    att = SoftmaxAttention(64).cuda()
    q, k, v = _qkv(grad=True)
    mask = torch.zeros(2, 256, dtype=torch.bool, device="cuda")
    mask[0, :40] = True  # left padding: needs an explicit mask
    mask[1, 100:120] = True
    with _fused_only():  # raises "No available kernel" if only the math fallback could run
        out = att(q, k, v, causal=causal, key_padding_mask=mask)
        out.float().sum().backward()
    ref = att(q.double(), k.double(), v.double(), causal=causal, key_padding_mask=mask)
    torch.testing.assert_close(out.double(), ref, rtol=0.03, atol=0.03)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cls", [LinearAttention, PerformerAttention])
@pytest.mark.parametrize("causal", [False, True])
def test_kernel_backends_cuda_equal_cpu(cls, causal) -> None:
    torch.manual_seed(0)
    att = cls(64).eval()
    q, k, v = (x.float().cpu() for x in _qkv(n=300, dtype=torch.float32))
    mask = torch.zeros(2, 300, dtype=torch.bool)
    mask[1, 250:] = True
    cpu = att(q, k, v, causal=causal, key_padding_mask=mask)
    gpu = att.cuda()(q.cuda(), k.cuda(), v.cuda(), causal=causal, key_padding_mask=mask.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=2e-3, atol=2e-3)  # TF32 / fla tolerance


@pytest.mark.skipif(not fla_available(), reason="fla-core not installed")
def test_fla_path_matches_pytorch_chunked() -> None:
    q, k, v = _qkv(n=1000, dtype=torch.float32)
    phi_q, phi_k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    ref = causal_linear_chunked(phi_q.double(), phi_k.double(), v.double())
    out = causal_linear_attention(phi_q, phi_k, v, backend="fla")
    torch.testing.assert_close(out.double(), ref, rtol=5e-3, atol=5e-3)
