"""sineSPE projection in two Triton kernels: q̂ = Σ_{d,k} x_d Ω_{d,k}(n) W_{d,k,:} (and k̂ with no phase).

Same function and signature as `sine_project` (positional/sine_spe.py, the reference): x (B, N, H, D),
freq and phase (H, D, K), weight W (H, D, 2K, R) with rows [cos_1..cos_K, sin_1..sin_K].

- forward (`_sine_fwd`): one program per (block of positions, batch, head). For each feature d it
  makes cos/sin of the angles 2π f t + θ for its (BLOCK_N, K) tile in registers, scales them by x_d
  and adds two tl.dot with the (K, R) slices of W into a (BLOCK_N, R) accumulator. Nothing of size
  (B, N, H, D, 2K) or (N, H, D, R) exists: memory traffic is x, W and the output.
- backward (`_sine_bwd`): one program per (feature d, head, segment of positions). Per block of
  positions and batch row it recomputes cos/sin, forms g·W_dᵀ by tl.dot, and from it writes dx[:, d]
  (each element of dx has exactly one owner) and accumulates the gradients of W_d (two tl.dot) and
  of the angles (Σ_n and Σ_n n·) in registers; per-segment partial sums go to small buffers that the
  host adds (deterministic: no atomics). The gradients of frequencies and phases follow from the
  angle sums; gains and gate reach W through autograd of the (small) mixing weight.

Assumptions (the interpreter does not check them; keep them when changing the launch):
- tl.dot tiles are powers of two and ≥ 16 on each side: BLOCK_N = 64 (forward) / 32 (backward),
  BLOCK_K = next power of two ≥ max(K, 16), BLOCK_R likewise for R; masked rows/columns load zeros,
  so padding adds nothing (K=10 pads to 16: 1.6x the dot work, the price of tl.dot's shapes).
- register/shared memory: K ≤ 64 and R ≤ 256 (larger raise); the largest tile is BLOCK_N × BLOCK_R
  fp32 plus two BLOCK_K × BLOCK_R accumulators, well inside an H100/H200's 228 KiB per SM with
  num_warps=4. No autotuning: one conservative configuration.
- precision: on a GPU, fp32 inputs go through tl.dot in tf32 (10-bit mantissa), so results differ
  from the float64 reference by ~1e-3 relative (GPU tests allow 1e-2 of the output scale); bf16/fp16
  inputs round the features to that dtype (~1e-2). The interpreter computes the dots in fp32, so CPU
  tests hold to 1e-4 (bfloat16 inputs are multiplied in fp32 there: the interpreter's bfloat16
  tl.dot is wrong, see `_dot_dtype`). Angles are fp32: the offset is reduced modulo one cycle in
  float64 on the host, and within the call 2π·frac(f·n) loses ~N·2^-24 cycles (as the reference's
  chunks do).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from spelab.nn.kernels import interpreting
from spelab.nn.positional.shared_codes import first_order_only

BLOCK_N_FWD = 64
BLOCK_N_BWD = 32
MAX_K, MAX_R = 64, 256
# backward programs to aim for (D·H programs per segment of positions): enough to fill an H100/H200
TARGET_PROGRAMS = 2048
TWO_PI = 2 * math.pi


@triton.jit
def _angles(f, shift, n_idx):
    """2π frac(f n) + shift for a (BLOCK_N,) column of positions and (BLOCK_K,) frequencies."""
    cycles = n_idx.to(tl.float32)[:, None] * f[None, :]
    cycles = cycles - tl.floor(cycles)
    return cycles * 6.283185307179586 + shift[None, :]


@triton.jit
def _sine_fwd(
    x_ptr,
    f_ptr,
    s_ptr,
    w_ptr,
    out_ptr,
    N,
    H,
    D,
    K,
    R,
    sxb,
    sxn,
    sxh,
    sob,
    son,
    soh,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    n_idx = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_idx = tl.arange(0, BLOCK_K)
    r_idx = tl.arange(0, BLOCK_R)
    n_ok = n_idx < N
    k_ok = k_idx < K
    w_mask = k_ok[:, None] & (r_idx < R)[None, :]
    x_row = x_ptr + b * sxb + n_idx * sxn + h * sxh
    acc = tl.zeros((BLOCK_N, BLOCK_R), dtype=tl.float32)
    for d in range(D):
        hd = h * D + d
        xd = tl.load(x_row + d, mask=n_ok, other=0.0).to(tl.float32)
        f = tl.load(f_ptr + hd * K + k_idx, mask=k_ok, other=0.0)
        shift = tl.load(s_ptr + hd * K + k_idx, mask=k_ok, other=0.0)
        angle = _angles(f, shift, n_idx)
        w_rows = w_ptr + (hd * 2 * K + k_idx[:, None]) * R + r_idx[None, :]
        w_cos = tl.load(w_rows, mask=w_mask, other=0.0)
        w_sin = tl.load(w_rows + K * R, mask=w_mask, other=0.0)
        u_cos = (tl.cos(angle) * xd[:, None]).to(w_cos.dtype)
        u_sin = (tl.sin(angle) * xd[:, None]).to(w_cos.dtype)
        acc += tl.dot(u_cos, w_cos)
        acc += tl.dot(u_sin, w_sin)
    out = out_ptr + b * sob + n_idx[:, None] * son + h * soh + r_idx[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=n_ok[:, None] & (r_idx < R)[None, :])


@triton.jit
def _sine_bwd(
    x_ptr,
    g_ptr,
    f_ptr,
    s_ptr,
    w_ptr,
    dx_ptr,
    dw_ptr,
    dang_ptr,
    dangn_ptr,
    B,
    N,
    H,
    D,
    K,
    R,
    blocks_per_segment,
    sxb,
    sxn,
    sxh,
    sgb,
    sgn,
    sgh,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    d = tl.program_id(0)
    h = tl.program_id(1)
    seg = tl.program_id(2)
    hd = h * D + d
    k_idx = tl.arange(0, BLOCK_K)
    r_idx = tl.arange(0, BLOCK_R)
    k_ok = k_idx < K
    r_ok = r_idx < R
    f = tl.load(f_ptr + hd * K + k_idx, mask=k_ok, other=0.0)
    shift = tl.load(s_ptr + hd * K + k_idx, mask=k_ok, other=0.0)
    # W_dᵀ slices (BLOCK_R, BLOCK_K), for g W_dᵀ
    wt_rows = w_ptr + (hd * 2 * K + k_idx[None, :]) * R + r_idx[:, None]
    wt_mask = r_ok[:, None] & k_ok[None, :]
    wt_cos = tl.load(wt_rows, mask=wt_mask, other=0.0)
    wt_sin = tl.load(wt_rows + K * R, mask=wt_mask, other=0.0)
    dw_cos = tl.zeros((BLOCK_K, BLOCK_R), dtype=tl.float32)
    dw_sin = tl.zeros((BLOCK_K, BLOCK_R), dtype=tl.float32)
    d_ang = tl.zeros((BLOCK_K,), dtype=tl.float32)
    d_ang_n = tl.zeros((BLOCK_K,), dtype=tl.float32)
    first = seg * blocks_per_segment
    last = tl.minimum(first + blocks_per_segment, tl.cdiv(N, BLOCK_N))
    for blk in range(first, last):
        n_idx = blk * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = n_idx < N
        angle = _angles(f, shift, n_idx)
        cos = tl.cos(angle)
        sin = tl.sin(angle)
        for b in range(B):
            xd = tl.load(x_ptr + b * sxb + n_idx * sxn + h * sxh + d, mask=n_ok, other=0.0).to(tl.float32)
            g = tl.load(
                g_ptr + b * sgb + n_idx[:, None] * sgn + h * sgh + r_idx[None, :],
                mask=n_ok[:, None] & r_ok[None, :],
                other=0.0,
            ).to(wt_cos.dtype)
            g_cos = tl.dot(g, wt_cos)  # (BLOCK_N, BLOCK_K)
            g_sin = tl.dot(g, wt_sin)
            dx = tl.sum(cos * g_cos + sin * g_sin, axis=1)
            tl.store(dx_ptr + b * sxb + n_idx * sxn + h * sxh + d, dx.to(dx_ptr.dtype.element_ty), mask=n_ok)
            u_cos = (cos * xd[:, None]).to(wt_cos.dtype)
            u_sin = (sin * xd[:, None]).to(wt_cos.dtype)
            dw_cos += tl.dot(tl.trans(u_cos), g)
            dw_sin += tl.dot(tl.trans(u_sin), g)
            # d/dangle of x_d (g_cos cos + g_sin sin); padded positions have x_d = 0
            da = xd[:, None] * (g_sin * cos - g_cos * sin)
            d_ang += tl.sum(da, axis=0)
            d_ang_n += tl.sum(da * n_idx.to(tl.float32)[:, None], axis=0)
    part = seg * H * D + hd
    dw_rows = dw_ptr + (part * 2 * K + k_idx[:, None]) * R + r_idx[None, :]
    dw_mask = k_ok[:, None] & r_ok[None, :]
    tl.store(dw_rows, dw_cos, mask=dw_mask)
    tl.store(dw_rows + K * R, dw_sin, mask=dw_mask)
    tl.store(dang_ptr + part * K + k_idx, d_ang, mask=k_ok)
    tl.store(dangn_ptr + part * K + k_idx, d_ang_n, mask=k_ok)


def _block(size: int) -> int:
    return max(16, triton.next_power_of_2(size))


def _dot_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of tl.dot's operands (W is cast to it, the features follow W). Triton 3.9's interpreter
    gets tl.dot on bfloat16 wrong (≈1e10 errors on a 16x16 product), so it multiplies in fp32 there."""
    return torch.float32 if dtype == torch.bfloat16 and interpreting() else dtype


def _shift(freq: torch.Tensor, phase: torch.Tensor | None, offset: int) -> torch.Tensor:
    """2π frac(f·offset) (+ θ), (H, D, K) fp32: the offset reduced in float64 so that it keeps its precision."""
    cycles = freq.detach().to(torch.float64) * offset
    shift = TWO_PI * (cycles - torch.floor(cycles))
    if phase is not None:
        shift = shift + phase.detach().to(torch.float64)
    return shift.to(torch.float32).contiguous()


class TritonSineProjection(torch.autograd.Function):
    """x (B, N, H, D) -> (B, N, H, R) through `_sine_fwd`; backward through `_sine_bwd`."""

    @staticmethod
    def forward(ctx, x, freq, phase, weight, offset):  # noqa: D401 (autograd signature)
        batch, n, heads, dim = x.shape
        k, num_realizations = freq.shape[-1], weight.shape[-1]
        if k > MAX_K or num_realizations > MAX_R:
            raise ValueError(
                f"triton sineSPE: num_sines ≤ {MAX_K} and num_realizations ≤ {MAX_R} "
                f"(register tiles), got {k} and {num_realizations}; use SPELAB_KERNELS=torch"
            )
        x_c = x.contiguous()
        f32 = freq.detach().to(torch.float32).contiguous()
        shift = _shift(freq, phase, offset)
        w = weight.detach().to(_dot_dtype(x.dtype)).contiguous()
        out = x.new_empty(batch, n, heads, num_realizations)
        grid = (triton.cdiv(n, BLOCK_N_FWD), batch * heads)
        _sine_fwd[grid](
            x_c,
            f32,
            shift,
            w,
            out,
            n,
            heads,
            dim,
            k,
            num_realizations,
            *x_c.stride()[:3],
            *out.stride()[:3],
            BLOCK_N=BLOCK_N_FWD,
            BLOCK_K=_block(k),
            BLOCK_R=_block(num_realizations),
            num_warps=4,
        )
        ctx.save_for_backward(x_c, freq, phase, weight)
        ctx.offset = offset
        return out

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        x, freq, phase, weight = ctx.saved_tensors
        need_x, need_f, need_p, need_w = ctx.needs_input_grad[:4]
        batch, n, heads, dim = x.shape
        k, num_realizations = freq.shape[-1], weight.shape[-1]
        g = grad.to(x.dtype).contiguous()
        f32 = freq.detach().to(torch.float32).contiguous()
        shift = _shift(freq, phase, ctx.offset)
        w = weight.detach().to(_dot_dtype(x.dtype)).contiguous()
        blocks = triton.cdiv(n, BLOCK_N_BWD)
        segments = max(1, min(blocks, triton.cdiv(TARGET_PROGRAMS, dim * heads)))
        per_segment = triton.cdiv(blocks, segments)
        segments = triton.cdiv(blocks, per_segment)
        dx = torch.empty_like(x)
        dw = x.new_empty((segments, heads, dim, 2 * k, num_realizations), dtype=torch.float32)
        dang = x.new_empty((segments, heads, dim, k), dtype=torch.float32)
        dang_n = torch.empty_like(dang)
        _sine_bwd[(dim, heads, segments)](
            x,
            g,
            f32,
            shift,
            w,
            dx,
            dw,
            dang,
            dang_n,
            batch,
            n,
            heads,
            dim,
            k,
            num_realizations,
            per_segment,
            *x.stride()[:3],
            *g.stride()[:3],
            BLOCK_N=BLOCK_N_BWD,
            BLOCK_K=_block(k),
            BLOCK_R=_block(num_realizations),
            num_warps=4,
        )
        d_angle = dang.sum(0)
        # angle = 2π f (offset + n) + θ: d/df = 2π (offset + n), d/dθ = 1
        dfreq = TWO_PI * (ctx.offset * d_angle + dang_n.sum(0)) if need_f else None
        return (
            dx if need_x else None,
            dfreq.to(freq.dtype) if need_f else None,
            d_angle.to(phase.dtype) if need_p and phase is not None else None,
            dw.sum(0).to(weight.dtype) if need_w else None,
            None,
        )


def triton_sine_project(
    x: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor | None, weight: torch.Tensor, offset: int = 0
) -> torch.Tensor:
    """`sine_project` through the Triton kernels (CUDA tensors, or any under TRITON_INTERPRET=1)."""
    return TritonSineProjection.apply(x, freq, phase, weight, offset)
