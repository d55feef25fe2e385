"""Positional schemes: absolute (none, sinusoidal, learned) and relative (sineSPE, convSPE, rope).

Absolute schemes are added to the embeddings: `forward(x, offset=0)`. Relative schemes transform the
queries and keys of every layer: `forward(q, k, code=None, offset=0, gate=None) -> (q̂, k̂)`.
See docs/architecture.md ("nn: positional schemes").
"""

from spelab.nn.positional.absolute import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from spelab.nn.positional.build import build_positional
from spelab.nn.positional.conv_spe import ConvCode, ConvSPE
from spelab.nn.positional.rope import RotaryEmbedding
from spelab.nn.positional.sine_spe import SineCode, SineSPE
from spelab.nn.positional.spe import SPEGate, StochasticPositionalEncoding

__all__ = [
    "ConvCode",
    "ConvSPE",
    "LearnedPositionalEncoding",
    "NoPositionalEncoding",
    "RotaryEmbedding",
    "SPEGate",
    "SineCode",
    "SineSPE",
    "SinusoidalPositionalEncoding",
    "StochasticPositionalEncoding",
    "build_positional",
]
