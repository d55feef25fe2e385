"""A cache of preprocessed splits on disk, keyed by the parameters that produced them.

`cached(dir, "text-official", {"max_length": 1000, ...}, build)` returns the stored dict of tensors
when a file for exactly those parameters exists, and otherwise calls `build()` and stores its result.
The file name carries the parameters (readable) and a hash of them (exact), as S4's loaders do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the stored format or preprocessing changes


def cache_key(name: str, params: Mapping[str, Any]) -> str:
    """`name-k1=v1-k2=v2-<hash>`: readable for short values, exact through the hash of all of them."""
    canonical = json.dumps({"v": CACHE_VERSION, **params}, sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    short = "-".join(
        f"{k}={v}"
        for k, v in sorted(params.items())
        if isinstance(v, (int, float, bool, str)) and len(str(v)) <= 24 and "/" not in str(v)
    )
    return f"{name}-{short}-{digest}" if short else f"{name}-{digest}"


def cached(
    cache_dir: str | os.PathLike, name: str, params: Mapping[str, Any], build: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Load `name` for `params` from `cache_dir`, or build, store (atomically) and return it."""
    path = Path(cache_dir) / f"{cache_key(name, params)}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # a truncated file from an interrupted run: rebuild it
            log.warning("Cache file %s is unreadable (%s); rebuilding it", path, err)
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(data, tmp)
    os.replace(tmp, path)
    log.info("Cached %s", path)
    return data
