"""plot_kernels returns a matplotlib Figure with one axis per requested head, drawing the kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from spelab.nn.positional import ConvSPE, SineSPE
from spelab.nn.positional.plot import plot_kernels


@pytest.mark.parametrize("heads,expected_axes", [(None, 3), ([0, 2], 2)])
def test_plot_kernels_axes_and_curves(heads, expected_axes):
    spe = SineSPE(3, 4, num_realizations=8, num_sines=2)
    fig = plot_kernels(spe, max_lag=6, heads=heads)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == expected_axes
    first = 0 if heads is None else heads[0]
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) == 13]  # not the lag-0 marker
    assert len(lines) == 4  # one curve per feature
    x, y = lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(-6, 7))
    expected = spe.kernel(torch.arange(-6, 7))[first, 0].detach().numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    fig.canvas.draw()  # renders with Agg


def test_plot_kernels_bad_arguments():
    spe = ConvSPE(2, 4, num_realizations=8, kernel_size=3)
    with pytest.raises(ValueError, match="heads"):
        plot_kernels(spe, 5, heads=[2])
    with pytest.raises(ValueError, match="max_lag"):
        plot_kernels(spe, -1)
    with pytest.raises(ValueError, match="SineSPE or ConvSPE"):
        plot_kernels(torch.nn.Linear(2, 2), 5)
