"""convSPE's codes by FFT: white noise filtered as a spectral product, in chunks of (head, feature) columns.

C = irfft(Z · s)[offset : offset+n] (ortho), Z the noise spectrum (F, H, D, R), s = conj(rfft(φ)) (F, H, D):
the cross-correlation of the time-domain noise with the filter φ (conv_spe.py).

Both directions run over a few (head, feature) columns at a time. The FFTs go along the frequency (time)
axis, the first one of an (F, H·D·R) array; over the whole array every transform strides across all
of memory, while on a CPU a chunk of columns stays in cache (measured ~1.3x faster forward, ~1.5x
backward on a 2-core CPU at N=1024). On a GPU the chunks are large (GPU_FILTER_CHUNK_ELEMENTS). The backward needs only the gradient of s:
ds = Σ_r conj(Z) · G, G = rfft(dC) with the bins other than DC and Nyquist doubled (irfft's adjoint),
one product and reduction over R per chunk, with dC written into reused zero-padded buffers, instead
of autograd's full padded copy, product and sum.

`build_conv_codes` is the node of the shared codes (shared_codes.py): the layers hand it their (x, g),
and its backward forms dC for one chunk of columns at a time, straight into that chunk's FFT, instead
of one full (N, H, D, R) dC per side.
"""

from __future__ import annotations

import torch

from spelab.nn.kernels import cpu_kernels
from spelab.nn.positional.shared_codes import SharedCodes, first_order_only

# complex elements per chunk: on a CPU 2^18 (complex64: 2 MiB, in cache); on a GPU the batched FFTs
# want large batches, so chunks there only bound the temporaries (2^26: 512 MiB)
FILTER_CHUNK_ELEMENTS = 2**18
GPU_FILTER_CHUNK_ELEMENTS = 2**26


def _column_step(bins: int, num_realizations: int, limit: int, device: torch.device) -> int:
    """(head, feature) columns per chunk: about FILTER_CHUNK_ELEMENTS, at most `limit`, equal-sized."""
    budget = FILTER_CHUNK_ELEMENTS if device.type == "cpu" else GPU_FILTER_CHUNK_ELEMENTS
    step = max(1, min(limit, budget // (bins * num_realizations)))
    pieces = -(-limit // step)
    return -(-limit // pieces)


def _filter(z: torch.Tensor, s: torch.Tensor, offset: int, n: int, n_fft: int, out: torch.Tensor, step: int) -> None:
    """out (n, H·D, R) = irfft(z · s)[offset : offset+n], z (F, H·D, R), s (F, H·D), chunk by chunk."""
    for a in range(0, z.shape[1], step):
        b = min(z.shape[1], a + step)
        full = torch.fft.irfft(z[:, a:b] * s[:, a:b, None], n=n_fft, dim=0, norm="ortho")
        out[:, a:b] = full[offset : offset + n]


def _spec_gradient(z: torch.Tensor, padded: torch.Tensor, n_fft: int) -> torch.Tensor:
    """ds (F, c) from dC (n_fft, c, R) of c columns, zero outside the kept positions, and z (F, c, R):
    Σ_r conj(Z) · rfft(dC), the bins other than DC and Nyquist doubled (irfft's adjoint).

    conj(rfft(dC)) of the real dC is ihfft(dC) (ortho), so the product needs no conjugated copy of Z:
    ds = conj(Σ_r Z · ihfft(dC)); the doubling is applied to the reduced (F, c) result.
    """
    ds = torch.conj_physical((z * torch.fft.ihfft(padded, dim=0, norm="ortho")).sum(-1))
    ds[1 : (n_fft + 1) // 2] *= 2  # these bins stand for two frequencies each
    return ds


class _PaddedGradient:
    """dC of one chunk of columns as rows offset ... offset+n-1 of n_fft zero rows, in reused buffers
    (the rows outside are never written, so they stay zero): no padding copy per chunk."""

    def __init__(self, n_fft: int, offset: int, n: int, num_realizations: int, like: torch.Tensor) -> None:
        self.n_fft, self.offset, self.n, self.num_realizations, self.like = n_fft, offset, n, num_realizations, like
        self._buffers: dict[int, torch.Tensor] = {}  # by chunk width (the last chunk may be narrower)

    def rows(self, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(padded (n_fft, c, R), its kept rows (n, c, R), a contiguous view to write dC into)."""
        if columns not in self._buffers:
            self._buffers[columns] = self.like.new_zeros(self.n_fft, columns, self.num_realizations)
        padded = self._buffers[columns]
        return padded, padded[self.offset : self.offset + self.n]


class _FilterNoise(torch.autograd.Function):
    """(spectrum (F, H, D, R), s (F, H, D)) -> codes (n, H, D, R); the backward gives ds only."""

    @staticmethod
    def forward(ctx, spectrum, spec, offset, n, n_fft):  # noqa: D401 (autograd signature)
        bins, heads, dim, num_realizations = spectrum.shape
        hd = heads * dim
        step = _column_step(bins, num_realizations, hd, spectrum.device)
        out = spectrum.real.new_empty(n, hd, num_realizations)
        _filter(spectrum.view(bins, hd, num_realizations), spec.reshape(bins, hd), offset, n, n_fft, out, step)
        ctx.save_for_backward(spectrum)
        ctx.offset, ctx.n_fft, ctx.step = offset, n_fft, step
        return out.view(n, heads, dim, num_realizations)

    @staticmethod
    @first_order_only
    def backward(ctx, grad):
        (spectrum,) = ctx.saved_tensors
        if not ctx.needs_input_grad[1]:
            return None, None, None, None, None
        bins, heads, dim, num_realizations = spectrum.shape
        hd = heads * dim
        z = spectrum.view(bins, hd, num_realizations)
        n = grad.shape[0]
        grad = grad.reshape(n, hd, num_realizations)
        pad = _PaddedGradient(ctx.n_fft, ctx.offset, n, num_realizations, spectrum.real)
        d_spec = spectrum.new_empty(bins, hd)
        for a in range(0, hd, ctx.step):
            b = min(hd, a + ctx.step)
            padded, kept = pad.rows(b - a)
            kept.copy_(grad[:, a:b])
            d_spec[:, a:b] = _spec_gradient(z[:, a:b], padded, ctx.n_fft)
        return None, d_spec.view(bins, heads, dim), None, None, None


def filter_noise(spectrum: torch.Tensor, spec: torch.Tensor, offset: int, n: int, n_fft: int) -> torch.Tensor:
    """Codes (n, H, D, R) = irfft(spectrum · spec)[offset : offset+n], spectrum (F, H, D, R), spec (F, H, D)."""
    return _FilterNoise.apply(spectrum, spec, offset, n, n_fft)


class _BuildConvCodes(torch.autograd.Function):
    """(spectrum, s_q, s_k) -> token; C_q, C_k (n·H, D, R) go into `shared`, their gradient comes back
    as the layers' (x, g) pairs and is formed one chunk of (head, feature) columns at a time."""

    @staticmethod
    def forward(ctx, shared, spectrum, spec_q, spec_k, offset, n, n_fft):  # noqa: D401 (autograd signature)
        bins, heads, dim, num_realizations = spectrum.shape
        z = spectrum.view(bins, heads * dim, num_realizations)
        step = _column_step(bins, num_realizations, dim, spectrum.device)  # within one head (dC in backward)
        codes = []
        for spec in (spec_q, spec_k):
            out = spectrum.real.new_empty(n, heads * dim, num_realizations)
            _filter(z, spec.reshape(bins, heads * dim), offset, n, n_fft, out, step)
            codes.append(out.view(n * heads, dim, num_realizations))  # the layout contract_shared reads
        shared.codes = tuple(codes)
        shared.kernels = cpu_kernels(codes[0], num_realizations)  # compiled contractions on a CPU
        ctx.shared, ctx.offset, ctx.n, ctx.n_fft, ctx.step = shared, offset, n, n_fft, step
        ctx.save_for_backward(spectrum)
        return spectrum.real.new_zeros(())

    @staticmethod
    @first_order_only
    def backward(ctx, _):
        shared: SharedCodes = ctx.shared
        (spectrum,) = ctx.saved_tensors
        bins, heads, dim, num_realizations = spectrum.shape
        z = spectrum.view(bins, heads * dim, num_realizations)
        n, real = ctx.n, spectrum.real.dtype
        grads = [None, None]
        for side in (0, 1):
            taken = shared.take(side, real)
            if taken is None or not ctx.needs_input_grad[2 + side]:
                continue
            x, g = taken  # (n·H, ΣB, D), (n·H, ΣB, R)
            x, g = x.view(n, heads, -1, dim), g.view(n, heads, -1, num_realizations)
            pad = _PaddedGradient(ctx.n_fft, ctx.offset, n, num_realizations, x)
            d_spec = spectrum.new_empty(bins, heads * dim)
            for h in range(heads):
                for a in range(0, dim, ctx.step):
                    b = min(dim, a + ctx.step)
                    padded, kept = pad.rows(b - a)
                    torch.bmm(x[:, h, :, a:b].transpose(1, 2), g[:, h], out=kept)  # this chunk of dC
                    cols = slice(h * dim + a, h * dim + b)
                    d_spec[:, cols] = _spec_gradient(z[:, cols], padded, ctx.n_fft)
            grads[side] = d_spec.view(bins, heads, dim)
        shared.finish_backward()
        return None, None, grads[0], grads[1], None, None, None


def build_conv_codes(
    spectrum: torch.Tensor, spec_q: torch.Tensor, spec_k: torch.Tensor, offset: int, n: int, n_fft: int
) -> tuple[SharedCodes, torch.Tensor | None]:
    """C_q, C_k = irfft(spectrum · s)[offset : offset+n] for s = spec_q, spec_k (F, H, D), as (n·H, D, R),
    for `contract_shared` by any number of layers: (shared, token), as `build_shared_codes` of sineSPE."""
    shared = SharedCodes()
    token = _BuildConvCodes.apply(shared, spectrum, spec_q, spec_k, offset, n, n_fft)
    shared.token_dtype = token.dtype
    return shared, (token if token.requires_grad else None)
