"""Attention backends: exact softmax (SDPA), Performer (FAVOR+) and linear attention (elu / relu).

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
from .feature_maps import elu_feature_map, favor_plus_features, orthogonal_gaussian_matrix, relu_feature_map
from .linear import LinearAttention
from .performer import PerformerAttention
from .softmax import KVCache, SoftmaxAttention

__all__ = [
    "SoftmaxAttention",
    "PerformerAttention",
    "LinearAttention",
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
