"""spelab.nn: attention backends, positional schemes and Transformer blocks, in pure PyTorch.

Importable on its own (no Lightning, Hydra or data code). `plot_kernels` is the one name loaded on
first use: it needs matplotlib, whose import costs several times all of `spelab.nn` after torch.
"""

from __future__ import annotations

from spelab.nn.attention import (
    DeltaNetAttention,
    GatedLinearAttention,
    LinearAttention,
    PerformerAttention,
    SoftmaxAttention,
)
from spelab.nn.heads import ClassificationHead, DualClassificationHead, LMHead
from spelab.nn.positional import (
    ALiBi,
    CAPE,
    FIRE,
    KERPLE,
    ConvSPE,
    ExponentialDecay,
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    RoPE2D,
    RotaryEmbedding,
    SineSPE,
    SinusoidalPositionalEncoding,
    XPos,
    build_positional,
)
from spelab.nn.transformer import Transformer

__all__ = [
    "ALiBi",
    "CAPE",
    "ClassificationHead",
    "ConvSPE",
    "DeltaNetAttention",
    "DualClassificationHead",
    "ExponentialDecay",
    "FIRE",
    "GatedLinearAttention",
    "KERPLE",
    "LMHead",
    "LearnedPositionalEncoding",
    "LinearAttention",
    "NoPositionalEncoding",
    "PerformerAttention",
    "RoPE2D",
    "RotaryEmbedding",
    "SineSPE",
    "SinusoidalPositionalEncoding",
    "SoftmaxAttention",
    "Transformer",
    "XPos",
    "build_positional",
    "plot_kernels",
]


def __getattr__(name: str):
    if name == "plot_kernels":
        from spelab.nn.positional.plot import plot_kernels

        return plot_kernels
    raise AttributeError(f"module 'spelab.nn' has no attribute {name!r}")
