"""`key=value` command lines over a dataclass of defaults (spelab.evaluate, spelab.generate)."""

from __future__ import annotations

import logging
import sys
from typing import Sequence, TypeVar

T = TypeVar("T")


def parse_dotlist(schema: type[T], argv: Sequence[str] | None, prog: str) -> T:
    """Merge OmegaConf dotlist arguments into `schema`'s defaults; a bad key or value exits with the
    allowed keys named. Also sets up plain INFO logging for the command."""
    from omegaconf import OmegaConf

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
    except Exception as err:
        allowed = ", ".join(schema.__dataclass_fields__)
        raise SystemExit(f"{prog}: bad arguments {args}: {err}\nallowed keys: {allowed}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return schema(**OmegaConf.to_container(cfg))
