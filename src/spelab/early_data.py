"""Prepare and load the data before any logger starts, so a missing data dir fails before a W&B run
exists, and the (possibly long) preparation is reported before training output begins."""

from __future__ import annotations

import os
from typing import Any


def single_process() -> bool:
    """True unless this is one of several ranks (where Lightning runs prepare_data on one rank only)."""
    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        if int(os.environ.get(var, "1") or 1) > 1:
            return False
    return True


def prepare_early(dm: Any) -> None:
    """dm.prepare_data() and dm.setup("fit") now; Lightning calls them again in fit (both are
    idempotent for spelab's DataModules: caches are reused and built splits kept)."""
    if not single_process():
        return
    dm.prepare_data()
    dm.setup("fit")
