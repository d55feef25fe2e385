"""Attention backends: exact softmax (SDPA), Performer (FAVOR+), linear attention (elu / relu), GLA, DeltaNet.

All share `out = att(q, k, v, causal=False, key_padding_mask=None)` with q, k (B,N,H,Dk), v (B,N,H,Dv),
and recurrent decoding `state = att.init_state(B, H, Dv)`, `out_t, state = att.step(q_t, k_t, v_t, state)`.
"""

from .causal_linear import (
    LinearState,
    causal_linear_attention,
    causal_linear_chunked,
    causal_linear_naive,
    fla_available,
    linear_attention,
    linear_attention_masked,
)
from .deltanet import DeltaNetAttention, chunk_delta_rule, naive_delta_rule
from .feature_maps import elu_feature_map, favor_plus_features, orthogonal_gaussian_matrix, relu_feature_map
from .gated_scan import bidirectional_gated_scan, chunk_gated_scan, naive_bidirectional_gated_scan, naive_gated_scan
from .gla import GatedLinearAttention
from .linear import LinearAttention
from .performer import PerformerAttention
from .softmax import KVCache, SoftmaxAttention

__all__ = [
    "SoftmaxAttention",
    "PerformerAttention",
    "LinearAttention",
    "GatedLinearAttention",
    "DeltaNetAttention",
    "chunk_gated_scan",
    "naive_gated_scan",
    "bidirectional_gated_scan",
    "naive_bidirectional_gated_scan",
    "chunk_delta_rule",
    "naive_delta_rule",
    "KVCache",
    "LinearState",
    "linear_attention",
    "linear_attention_masked",
    "causal_linear_attention",
    "causal_linear_chunked",
    "causal_linear_naive",
    "fla_available",
    "elu_feature_map",
    "relu_feature_map",
    "favor_plus_features",
    "orthogonal_gaussian_matrix",
]
