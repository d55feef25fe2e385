"""The sinusoidal features Ω of sineSPE, shared by its chunked paths (sine_spe.py) and its shared codes
(sine_shared.py)."""

from __future__ import annotations

import math

import torch


def sine_features(
    freq: torch.Tensor, phase: torch.Tensor | None, start: int, n: int, dtype: torch.dtype, position_axis: int = 1
) -> torch.Tensor:
    """Ω at positions start ... start+n-1: [cos a, sin a], a = 2π f t (+ θ), of shape (H, n, D, 2K)
    (position_axis=1), (H, D, n, 2K) (position_axis=2) or Ωᵀ (H, D, 2K, n) (position_axis=3).

    The phase at `start` is reduced modulo one cycle in float64 on the small (H, D, K) tensor, so a
    large offset keeps its precision; within the chunk the angle grows by 2π f per position.
    """
    calc = torch.promote_types(dtype, torch.float32)
    f = freq.detach()
    start_cycles = f.to(torch.float64) * start
    base = (2 * math.pi * (start_cycles - torch.floor(start_cycles))).to(calc)  # (H, D, K)
    if phase is not None:
        base = base + phase.detach().to(calc)
    shape = [1, 1, 1, 1]
    shape[position_axis] = n
    steps = torch.arange(n, device=f.device, dtype=calc).view(shape)
    angle = torch.addcmul(base.unsqueeze(position_axis), steps, f.to(calc).unsqueeze(position_axis), value=2 * math.pi)
    if position_axis == 3:  # each half of Ωᵀ is contiguous per (head, feature): cos and sin write in place
        out = angle.new_empty(*angle.shape[:2], 2 * angle.shape[2], n)
        k = angle.shape[2]
        torch.cos(angle, out=out[:, :, :k])
        torch.sin(angle, out=out[:, :, k:])
        return out.to(dtype)
    # cos and sin on contiguous tensors, then one concatenation: a strided `out=` with K-wide rows is not
    # vectorised on CPU
    return torch.cat((torch.cos(angle), torch.sin(angle)), dim=-1).to(dtype)
