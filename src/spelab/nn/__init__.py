"""spelab.nn: attention backends, positional schemes and Transformer blocks, in pure PyTorch.

Importable on its own (no Lightning, Hydra or data code). Names resolve lazily so that importing one
part does not pay for the others.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SoftmaxAttention": "spelab.nn.attention",
    "PerformerAttention": "spelab.nn.attention",
    "LinearAttention": "spelab.nn.attention",
    "GatedLinearAttention": "spelab.nn.attention",
    "DeltaNetAttention": "spelab.nn.attention",
    "NoPositionalEncoding": "spelab.nn.positional",
    "SinusoidalPositionalEncoding": "spelab.nn.positional",
    "LearnedPositionalEncoding": "spelab.nn.positional",
    "SineSPE": "spelab.nn.positional",
    "ConvSPE": "spelab.nn.positional",
    "RotaryEmbedding": "spelab.nn.positional",
    "ALiBi": "spelab.nn.positional",
    "KERPLE": "spelab.nn.positional",
    "FIRE": "spelab.nn.positional",
    "ExponentialDecay": "spelab.nn.positional",
    "XPos": "spelab.nn.positional",
    "RoPE2D": "spelab.nn.positional",
    "CAPE": "spelab.nn.positional",
    "build_positional": "spelab.nn.positional",
    "plot_kernels": "spelab.nn.positional.plot",
    "Transformer": "spelab.nn.transformer",
    "ClassificationHead": "spelab.nn.heads",
    "DualClassificationHead": "spelab.nn.heads",
    "LMHead": "spelab.nn.heads",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spelab.nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
