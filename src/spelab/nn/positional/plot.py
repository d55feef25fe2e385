"""plot_kernels: the learned SPE kernels P̃_d(τ) of each head against the lag τ (one panel per head)."""

from __future__ import annotations

from typing import Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spelab.nn.positional.spe import SPEGate, StochasticPositionalEncoding


def plot_kernels(
    spe: StochasticPositionalEncoding, max_lag: int, heads: Sequence[int] | None = None, gate: SPEGate | None = None
) -> Figure:
    """One axis per head, one curve per feature d: the effective kernel at lags -max_lag ... max_lag.

    Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).
    """
    if not isinstance(spe, StochasticPositionalEncoding):
        raise ValueError(f"plot_kernels: spe must be a SineSPE or ConvSPE, got {type(spe).__name__}")
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 0:
        raise ValueError(f"plot_kernels: max_lag must be a non-negative integer, got {max_lag!r}")
    heads = list(range(spe.num_heads)) if heads is None else list(heads)
    bad = [h for h in heads if not isinstance(h, int) or not 0 <= h < spe.num_heads]
    if not heads or bad:
        raise ValueError(
            f"plot_kernels: heads must be a non-empty list of indices in [0, {spe.num_heads}), got {heads}"
        )
    lags = torch.arange(-max_lag, max_lag + 1)
    with torch.no_grad():
        kernel = spe.kernel(lags, gate=gate).detach().cpu().float()  # (H, D, L)
    cols = min(4, len(heads))
    rows = -(-len(heads) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, h in enumerate(heads):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(lags.numpy(), kernel[h].T.numpy(), linewidth=0.7, alpha=0.6)
        ax.set_title(f"head {h}")
        ax.set_xlabel("lag m - n")
        ax.axvline(0, color="grey", linewidth=0.5)
    fig.suptitle(f"{type(spe).__name__}: effective kernels (one curve per feature)")
    return fig
