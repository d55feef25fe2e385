"""SPE kernels: kernel() against independent direct computations, and the Monte-Carlo contract

    averaged over draws, (q̂_m · k̂_n) / sqrt(R)  ->  Σ_d q_md k_nd P̃_d(m - n) / sqrt(D)

(docs/spe.md, "The idea"), for sine and conv, gated and not, at offset 0 and at a shifted offset.
"""

from __future__ import annotations

import pytest
import torch

from spelab.nn.positional import ConvSPE, SineSPE
from spelab.nn.positional.naive import naive_kernel

LAGS = list(range(-9, 10))


def _spe(kind: str, gated: bool, realizations: int = 8):
    torch.manual_seed(1)
    if kind == "sine":
        spe = SineSPE(2, 3, num_realizations=realizations, num_sines=4, gated=gated)
        with torch.no_grad():  # faster frequencies than the init, so a few lags show structure
            spe.freqs.add_(3.0)
    else:
        spe = ConvSPE(2, 3, num_realizations=realizations, kernel_size=5, gated=gated)
        with torch.no_grad():  # signed filters, so the kernel is not trivially positive
            spe.filter_q.sub_(0.1)
    return spe.double()


@pytest.mark.parametrize("gated", [False, True])
def test_sine_kernel_matches_closed_form(gated):
    spe = _spe("sine", gated)
    lags = torch.tensor(LAGS)
    torch.testing.assert_close(spe.kernel(lags), naive_kernel(spe, lags), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gated", [False, True])
def test_conv_kernel_is_the_filters_cross_correlation(gated):
    spe = _spe("conv", gated)
    lags = torch.tensor(LAGS)
    torch.testing.assert_close(spe.kernel(lags), naive_kernel(spe, lags), rtol=1e-10, atol=1e-12)


def test_conv_kernel_exactly_zero_outside_the_window():
    spe = _spe("conv", gated=False)
    p = spe.kernel_size
    lags = torch.tensor([-50, -p - 1, -p, p, p + 3, 1000])
    assert torch.equal(spe.kernel(lags), torch.zeros(2, 3, len(lags), dtype=torch.float64))
    inside = spe.kernel(torch.tensor([-(p - 1), 0, p - 1]))
    assert (inside != 0).all()  # the edges of the window are still nonzero


def test_per_layer_gate_is_used_by_kernel():
    spe = _spe("sine", gated=True)
    layer_gate = spe.make_gate().double()
    with torch.no_grad():
        layer_gate.gate.fill_(2.0)
    lags = torch.tensor(LAGS)
    got = spe.kernel(lags, gate=layer_gate)
    torch.testing.assert_close(got, naive_kernel(spe, lags, gate=layer_gate), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(got, spe.kernel(lags))  # the layer's gate, not the module's


# ---------------------------------------------------------------------------- Monte-Carlo
# Each realization r (of every draw) gives an i.i.d. sample Y_r = sqrt(R) q̂_mr k̂_nr whose mean is
# the target. With S = draws·R samples, the mean of Y has standard error SE = std(Y)/sqrt(S). We
# check |mean - target| <= 5 SE at every (b, m, n, h) (≈ 500 cells: a false alarm has probability
# < 1e-3) and that the test has power: SE is below 5% of the typical |target|, so a kernel, scale
# or gate off by 10% shifts a typical cell by ~2 SE and the worst of the ~500 cells by > 5 SE
# (test_monte_carlo_detects_a_wrong_kernel checks exactly that).
R_MC, DRAWS, N_MC = 2048, 12, 11


@pytest.mark.parametrize("kind", ["sine", "conv"])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("offset", [0, 23])
def test_monte_carlo_matches_kernel(kind, gated, offset):
    spe = _spe(kind, gated, realizations=R_MC)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, N_MC, 2, 3, generator=g, dtype=torch.float64)
    k = torch.randn(2, N_MC, 2, 3, generator=g, dtype=torch.float64)
    tau = torch.arange(N_MC)[:, None] - torch.arange(N_MC)[None, :]  # m - n
    kern = spe.kernel(torch.arange(-N_MC + 1, N_MC)).detach()  # (H, D, 2N-1)
    ptilde = kern[..., tau + N_MC - 1]  # (H, D, N, N)
    target = torch.einsum("bmhd,bnhd,hdmn->bmnh", q, k, ptilde) / 3**0.5

    total = torch.zeros_like(target)
    total_sq = torch.zeros_like(target)
    torch.manual_seed(5)
    with torch.no_grad():
        for _ in range(DRAWS):
            code = spe.draw(offset + N_MC)
            qhat, khat = spe(q, k, code=code, offset=offset)
            y = torch.einsum("bmhr,bnhr->bmnhr", qhat, khat) * R_MC**0.5
            total += y.sum(-1)
            total_sq += (y**2).sum(-1)
    count = DRAWS * R_MC
    mean = total / count
    se = ((total_sq / count - mean**2) / count).sqrt()
    z = (mean - target).abs() / se
    assert z.max() < 5.0, f"max z-score {z.max():.2f}"
    informative = target != 0  # ungated conv: pairs further apart than P have an exactly zero target
    assert se[informative].median() < 0.05 * target[informative].abs().median()
    if kind == "conv":
        assert (tau.abs() >= spe.kernel_size).any()  # the z-test above also covered the zero lags


def test_monte_carlo_detects_a_wrong_kernel():
    """The same check fails when the target uses a kernel off by 10%: the tolerance has power."""
    spe = _spe("sine", gated=True, realizations=R_MC)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, N_MC, 2, 3, generator=g, dtype=torch.float64)
    k = torch.randn(1, N_MC, 2, 3, generator=g, dtype=torch.float64)
    tau = torch.arange(N_MC)[:, None] - torch.arange(N_MC)[None, :]
    ptilde = 1.1 * spe.kernel(torch.arange(-N_MC + 1, N_MC)).detach()[..., tau + N_MC - 1]
    target = torch.einsum("bmhd,bnhd,hdmn->bmnh", q, k, ptilde) / 3**0.5
    torch.manual_seed(5)
    ys = []
    with torch.no_grad():
        for _ in range(DRAWS):
            qhat, khat = spe(q, k)
            ys.append(torch.einsum("bmhr,bnhr->bmnhr", qhat, khat) * R_MC**0.5)
    y = torch.cat(ys, -1)
    z = (y.mean(-1) - target).abs() / (y.std(-1) / y.shape[-1] ** 0.5)
    assert z.max() > 5.0
