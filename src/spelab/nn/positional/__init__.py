"""Positional schemes: absolute (none, sinusoidal, learned, cape), relative (sineSPE, convSPE, rope,
xpos, rope2d) and logit biases (alibi, kerple, fire, decay; see bias.py).

Absolute schemes are added to the embeddings: `forward(x, offset=0)`. Relative schemes transform the
queries and keys of every layer: `forward(q, k, code=None, offset=0, gate=None) -> (q̂, k̂)`.
See docs/layout.md ("nn: positional schemes").
"""

from spelab.nn.positional.absolute import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from spelab.nn.positional.alibi import ALiBi
from spelab.nn.positional.bias import BiasScheme
from spelab.nn.positional.build import build_positional
from spelab.nn.positional.cape import CAPE
from spelab.nn.positional.decay import ExponentialDecay
from spelab.nn.positional.fire import FIRE
from spelab.nn.positional.kerple import KERPLE
from spelab.nn.positional.rope2d import RoPE2D
from spelab.nn.positional.xpos import XPos
from spelab.nn.positional.conv_spe import ConvCode, ConvSPE
from spelab.nn.positional.rope import RotaryEmbedding
from spelab.nn.positional.sine_spe import SineCode, SineSPE
from spelab.nn.positional.spe import SPEGate, StochasticPositionalEncoding

__all__ = [
    "ALiBi",
    "BiasScheme",
    "CAPE",
    "ExponentialDecay",
    "FIRE",
    "KERPLE",
    "RoPE2D",
    "XPos",
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
