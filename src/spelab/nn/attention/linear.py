"""LinearAttention: Katharopoulos et al. (2020) with elu+1, or LRA's relu+1e-3 feature map."""

from __future__ import annotations

import torch

from ._kernel_base import KernelAttention
from .causal_linear import DEFAULT_CHUNK
from .feature_maps import get_feature_map


class LinearAttention(KernelAttention):
    """out_t = sum_s phi(q_t).phi(k_s) v_s / (sum_s phi(q_t).phi(k_s) + eps), phi elementwise.

    Args:
        key_dim: dimension of the queries/keys this backend receives (R after SPE).
        feature_map: "elu" (elu(x)+1) or "relu" (relu(x)+1e-3, the LRA variant).
        eps: added to the normaliser.
        chunk_size: chunk length of the causal chunked algorithm.
    """

    name = "linear"  # its option in conf/attention/ (pos_enc schemes list the options that take them)

    def __init__(
        self, key_dim: int, feature_map: str = "elu", eps: float = 1e-6, chunk_size: int = DEFAULT_CHUNK
    ) -> None:
        super().__init__(key_dim, eps=eps, chunk_size=chunk_size)
        self._phi = get_feature_map(feature_map)
        self.feature_map = feature_map

    @property
    def num_features(self) -> int:
        """M, the width of phi(x): an elementwise feature map keeps the key width."""
        return self.key_dim

    def features(
        self,
        x: torch.Tensor,
        is_query: bool,
        causal: bool,
        key_padding_mask: torch.Tensor | None,
        seq_dim: int = 1,
    ) -> torch.Tensor:
        return self._phi(x)

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, feature_map={self.feature_map!r}, eps={self.eps}"
