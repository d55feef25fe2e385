"""Kernel feature maps for linear attention: elu+1, relu+1e-3 and FAVOR+ positive random features.

FAVOR+ (Choromanski et al., 2021): phi(x) = M^{-1/2} (exp(W x~ - |x~|^2/2 - c) + eps), x~ = x d^{-1/4},
so that E[phi(q) . phi(k)] ~ exp(q.k / sqrt(d)) * exp(-c_q - c_k). The stabiliser c cancels in the
attention normaliser when it is constant per query row (queries) or per (batch, head) over all keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FEATURE_MAPS = ("elu", "relu")
RELU_OFFSET = 1e-3  # LRA's "Linear Transformer-ReLU": relu(x) + 0.001 (docs/spe.md, "The paper's experiments")


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 (Katharopoulos et al., 2020): positive, smooth."""
    return F.elu(x) + 1.0


def relu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """relu(x) + 1e-3: the LRA paper's variant (keeps the normaliser away from zero)."""
    return F.relu(x) + RELU_OFFSET


def get_feature_map(name: str):
    if name == "elu":
        return elu_feature_map
    if name == "relu":
        return relu_feature_map
    raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {name!r}")


def orthogonal_gaussian_matrix(
    num_rows: int,
    dim: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(num_rows, dim) random projection: orthogonal blocks with chi(dim)-distributed row norms.

    Each block of `dim` rows is the Q of a QR of a Gaussian (dim, dim) matrix (sign-corrected so it is
    Haar distributed); rows are then rescaled by the norms of independent Gaussian vectors, so each row
    is marginally N(0, I) while rows within a block stay orthogonal. Everything runs on `device`
    (batched QR, no host round trip).
    """
    num_blocks = math.ceil(num_rows / dim)
    work = torch.float64 if dtype == torch.float64 else torch.float32  # QR needs at least float32
    g = torch.randn(num_blocks, dim, dim, device=device, dtype=work, generator=generator)
    q, r = torch.linalg.qr(g)
    # Haar correction: multiply column j by sign(r_jj) (avoids the QR sign bias).
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = q.transpose(-1, -2).reshape(num_blocks * dim, dim)[:num_rows]
    norms = torch.randn(num_rows, dim, device=device, dtype=work, generator=generator).norm(dim=1)
    return (rows * norms.unsqueeze(1)).to(dtype)


def padding_view(key_padding_mask: torch.Tensor, seq_dim: int) -> torch.Tensor:
    """(B,N) padding mask as a view that broadcasts over (B,N,H,·) (seq_dim=1) or (B,H,N,·) (seq_dim=2)."""
    return key_padding_mask[:, :, None, None] if seq_dim == 1 else key_padding_mask[:, None, :, None]


def favor_plus_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    is_query: bool,
    stabilize_keys: bool = True,
    key_padding_mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    seq_dim: int = 1,
) -> torch.Tensor:
    """FAVOR+ positive random features of x (B,N,H,d) with projection (M,d) -> (B,N,H,M); with
    seq_dim=2, x is (B,H,N,d) and the features (B,H,N,M) (the layout of the non-causal contractions).

    The temperature d^{-1/4} is applied to x here (so q.k gets 1/sqrt(d)); d = x.shape[-1].
    Stabilisers (subtracted inside exp, they cancel in the normaliser):
    - queries: the max over features of each row;
    - keys: the max over (length, features) per (batch, head), padded keys excluded, when
      `stabilize_keys` (bidirectional). Causal attention and recurrent decoding must pass
      `stabilize_keys=False`, since a max over the sequence would look into the future; the exponent
      is then bounded by |w|^2/2 (about d/2), safe in float32, where callers compute.
    """
    d = x.shape[-1]
    num_features = projection.shape[0]
    x = x * d**-0.25
    wx = torch.einsum("...d,md->...m", x, projection.to(x.dtype))  # (…, M)
    # Everything subtracted from wx is one number per row, worked out on (…, 1) tensors, so the
    # M-wide work is wx, one subtraction, exp and eps: the scale M^-1/2 enters as -log(M)/2 inside exp.
    if is_query:
        # the max over features of wx - |x|^2/2 is max(wx) - |x|^2/2: the norm term cancels
        shift = wx.detach().amax(dim=-1, keepdim=True)
    else:
        shift = 0.5 * (x * x).sum(-1, keepdim=True)
        if stabilize_keys:
            if seq_dim not in (1, 2):
                raise ValueError(f"favor_plus_features: seq_dim must be 1 (B,N,H,d) or 2 (B,H,N,d), got {seq_dim!r}")
            row_max = wx.detach().amax(dim=-1, keepdim=True) - shift.detach()  # max of each key's logits
            if key_padding_mask is not None:
                row_max = row_max.masked_fill(padding_view(key_padding_mask, seq_dim), float("-inf"))
            # one constant per (batch, head); -inf when every key is padded -> use 0.
            c = row_max.amax(dim=seq_dim, keepdim=True)
            shift = shift + torch.where(torch.isfinite(c), c, torch.zeros_like(c))
    shift = shift + 0.5 * math.log(num_features)
    return torch.exp(wx - shift) + eps * num_features**-0.5
