"""convSPE: codes from white noise filtered by two learned length-P filters per (head, feature).

Q̄[m] = Σ_j φQ[j] z[m + j] and K̄[n] = Σ_j φK[j] z[n + j] (cross-correlation, as PyTorch's conv), with
one white noise z shared by both, so E[Q̄[m] K̄[n]] = P(m - n) = Σ_j φQ[j] φK[j + m - n]: the
cross-correlation of the filters, exactly zero for |m - n| >= P (docs/spe.md, "convSPE").

Fast path: the noise is drawn directly in the frequency domain (its real FFT, Hermitian by
construction) over n_fft >= length + P - 1 samples, so no wrap-around reaches the kept positions,
and the filtering is one spectral product and one inverse real FFT per side instead of a depthwise
convolution of width P, done in chunks of (head, feature) columns with a hand-written backward
(conv_fft.py). For a few positions (one-token decoding) the filters are applied directly to the
time-domain noise, which the code caches. The ungated codes are built once per forward and shared by
every layer (shared_codes.py): the gate scales q and k, so no layer filters again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from spelab.nn.positional._checks import check_positive_int
from spelab.nn.positional.conv_fft import build_conv_codes, filter_noise
from spelab.nn.positional.shared_codes import SharedCodes, share_codes
from spelab.nn.positional.spe import DEFAULT_NUM_REALIZATIONS, StochasticPositionalEncoding


def fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (fast FFT sizes, at most ~1.25 n instead of up to 2 n)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


@dataclass
class ConvCode:
    """A convSPE code: the ortho-normalised real spectrum of white N(0,1) noise, (n_fft//2+1, H, D, R).

    Valid for positions 0 ... length-1 (n_fft >= length + kernel_size - 1); gate_noise ε (H, D, R)
    when the module is gated.
    """

    spectrum: torch.Tensor
    length: int
    n_fft: int
    gate_noise: torch.Tensor | None = None
    _noise: torch.Tensor | None = field(default=None, repr=False)
    # (key, (SharedCodes, token)): the codes reused by the layers of one forward (see _shared_codes)
    cache: Any = field(default=None, repr=False, compare=False)

    def noise(self) -> torch.Tensor:
        """The time-domain white noise z, (n_fft, H, D, R), computed once and cached."""
        if self._noise is None:
            self._noise = torch.fft.irfft(self.spectrum, n=self.n_fft, dim=0, norm="ortho")
        return self._noise


def _filter_spectrum(phi: torch.Tensor, code: ConvCode) -> torch.Tensor:
    """conj(rfft(φ)) over the code's n_fft samples, (F, H, D): the cross-correlation with φ as a
    spectral product with the noise's spectrum."""
    spec = torch.fft.rfft(phi.to(code.spectrum.real.dtype), n=code.n_fft)  # (H, D, F)
    return torch.conj_physical(spec).permute(2, 0, 1).contiguous()


class ConvSPE(StochasticPositionalEncoding):
    """Convolutional SPE: R = num_realizations codes, white noise filtered by kernel_size-long filters."""

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        num_realizations: int = DEFAULT_NUM_REALIZATIONS,
        kernel_size: int = 128,
        gated: bool = True,
    ) -> None:
        super().__init__(num_heads, head_dim, num_realizations, gated)
        check_positive_int("ConvSPE", kernel_size=kernel_size)
        self.kernel_size = kernel_size
        shape = (num_heads, head_dim, kernel_size)
        # official init: U[0, 1) / sqrt(P/2), so the initial kernel is positive and smooth
        self.filter_q = torch.nn.Parameter(torch.rand(shape) / math.sqrt(kernel_size / 2))
        self.filter_k = torch.nn.Parameter(torch.rand(shape) / math.sqrt(kernel_size / 2))

    def _draw(self, length: int, device: torch.device) -> ConvCode:
        """White noise for positions 0 ... length-1, drawn as its spectrum."""
        ref = self._reference()
        n_fft = fft_size(length + self.kernel_size - 1)
        bins = n_fft // 2 + 1
        # frequency (then time) first: the codes come out as (N, H, D, R), the layout of the contraction
        shape = (bins, self.num_heads, self.head_dim, self.num_realizations)
        cdtype = torch.complex128 if ref.dtype == torch.float64 else torch.complex64
        # ortho rfft of white N(0,1) noise: interior bins complex N(0,1) (1/2 per part); the DC and
        # (even n) Nyquist bins are real N(0,1). Drawn as real pairs: on a CPU a complex randn takes
        # ~1.5x as long for the same numbers, and this draw is the largest single cost of convSPE there.
        real = torch.float64 if cdtype == torch.complex128 else torch.float32
        spectrum = torch.view_as_complex(torch.randn((*shape, 2), device=device, dtype=real).mul_(math.sqrt(0.5)))
        spectrum[0] = torch.randn(shape[1:], device=device, dtype=ref.dtype).to(cdtype)
        if n_fft % 2 == 0:
            spectrum[-1] = torch.randn(shape[1:], device=device, dtype=ref.dtype).to(cdtype)
        return ConvCode(spectrum=spectrum, length=length, n_fft=n_fft)

    def _code_length(self, code: ConvCode) -> int:
        if (
            not isinstance(code, ConvCode)
            or tuple(code.spectrum.shape[1:]) != (self.num_heads, self.head_dim, self.num_realizations)
            or code.n_fft < code.length + self.kernel_size - 1
        ):
            raise ValueError(
                f"ConvSPE: code must be a ConvCode from this module's draw() (heads={self.num_heads}, "
                f"head_dim={self.head_dim}, num_realizations={self.num_realizations}, "
                f"kernel_size={self.kernel_size}), got {code!r:.200}"
            )
        return code.length

    def codes(
        self, code: ConvCode, offset: int, n: int, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q̄, K̄ at positions offset ... offset+n-1, each (n, H, D, R), scaled by (R·D)^(-1/4) [· sqrt(1-δ)]."""
        scale = self.code_scale if keep is None else self.code_scale * keep[..., None]
        phi_q, phi_k = self.filter_q * scale, self.filter_k * scale
        if self._filters_directly(code, n):
            window = code.noise()[offset : offset + n + self.kernel_size - 1].unfold(0, self.kernel_size, 1)
            return (
                torch.einsum("nhdrj,hdj->nhdr", window, phi_q.to(window.dtype)),
                torch.einsum("nhdrj,hdj->nhdr", window, phi_k.to(window.dtype)),
            )
        with torch.autocast(code.spectrum.device.type, enabled=False):  # FFTs in the code's precision
            return self._fft_codes(code, offset, n, phi_q, phi_k)

    @staticmethod
    def _fft_codes(
        code: ConvCode, offset: int, n: int, phi_q: torch.Tensor, phi_k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        for phi in (phi_q, phi_k):
            out.append(filter_noise(code.spectrum, _filter_spectrum(phi, code), offset, n, code.n_fft))
        return out[0], out[1]

    def _filters_directly(self, code: ConvCode, n: int) -> bool:
        """A few positions (one-token decoding): direct filtering of the time-domain noise is cheaper."""
        return n * self.kernel_size <= code.n_fft

    def _project(self, q, k, code, offset, keep, mix):
        return self._project_shared(q, k, code, offset, keep, mix)

    def _code_tensor(self, code: ConvCode) -> torch.Tensor:
        return code.spectrum

    def _build_shared(self, code: ConvCode, offset: int, n: int) -> tuple[SharedCodes, torch.Tensor | None]:
        if self._filters_directly(code, n):
            return share_codes(*self.codes(code, offset, n))
        spec_q, spec_k = (_filter_spectrum(phi * self.code_scale, code) for phi in (self.filter_q, self.filter_k))
        return build_conv_codes(code.spectrum, spec_q, spec_k, offset, n, code.n_fft)

    def _raw_kernel(self, lags: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size
        heads, dim = self.num_heads, self.head_dim
        # out[t] = Σ_j φQ[j] φK[t + j - (P-1)]: the cross-correlation at τ = t - (P-1), |τ| < P
        padded = F.pad(self.filter_k.reshape(1, heads * dim, p), (p - 1, p - 1))
        corr = F.conv1d(padded, self.filter_q.reshape(heads * dim, 1, p), groups=heads * dim)
        corr = corr.reshape(heads, dim, 2 * p - 1)
        inside = lags.abs() < p
        index = torch.where(inside, lags + p - 1, torch.zeros_like(lags))
        return corr[..., index] * inside.to(corr.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", kernel_size={self.kernel_size}"
