"""build_positional: call a scheme factory (class or Hydra `_partial_`) with the arguments its kind takes."""

from __future__ import annotations

import functools
from typing import Any, Callable

from torch import nn

from spelab.nn.positional.absolute import NoPositionalEncoding


def _scheme_class(factory: Any) -> Any:
    """The class behind a factory: unwrap (nested) functools.partial objects."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def build_positional(
    factory: Callable[..., nn.Module] | None, *, d_model: int, num_heads: int, head_dim: int, max_len: int
) -> nn.Module:
    """Relative schemes get (num_heads, head_dim); absolute ones (d_model, max_len). None means no encoding."""
    if factory is None:
        factory = NoPositionalEncoding
    cls = _scheme_class(factory)
    is_relative = getattr(cls, "is_relative", None)
    if not callable(factory) or not isinstance(is_relative, bool):
        raise ValueError(
            f"build_positional: factory must be a positional scheme class (with a boolean "
            f"class attribute 'is_relative') or a functools.partial of one, got {factory!r}"
        )
    if is_relative:
        return factory(num_heads=num_heads, head_dim=head_dim)
    return factory(d_model=d_model, max_len=max_len)
