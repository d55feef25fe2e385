"""On-disk cache of tokenised pieces, keyed by the parameters that produced them.

One `.npz` per key: for every split the concatenated ids, the piece offsets and the piece names.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

Pieces = dict[str, list[tuple[str, np.ndarray]]]  # split -> [(name, ids)]


def default_cache_dir() -> Path:
    """$SPELAB_DATA_DIR/music, else ~/.cache/spelab/music."""
    root = os.environ.get("SPELAB_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "spelab")
    return Path(root) / "music"


def cache_key(params: dict) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def save_pieces(path: Path, pieces: Pieces, params: dict) -> None:
    arrays = {}
    for split, items in pieces.items():
        ids = [np.asarray(a, dtype=np.int32) for _, a in items]
        arrays[f"{split}_ids"] = np.concatenate(ids) if ids else np.zeros(0, np.int32)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(a) for a in ids]).astype(np.int64)
        arrays[f"{split}_names"] = np.asarray([n for n, _ in items], dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")  # atomic: concurrent runs never read a partial file
    np.savez_compressed(tmp, params=np.asarray(json.dumps(params, sort_keys=True, default=str)), **arrays)
    os.replace(tmp, path)


def load_pieces(path: Path) -> Pieces:
    data = np.load(path)
    splits = sorted({k.rsplit("_", 1)[0] for k in data.files if k.endswith("_ids")})
    out: Pieces = {}
    for split in splits:
        ids, offsets, names = data[f"{split}_ids"], data[f"{split}_offsets"], data[f"{split}_names"]
        out[split] = [(str(names[i]), ids[offsets[i] : offsets[i + 1]]) for i in range(len(names))]
    return out


def cached(cache_dir: str | os.PathLike | None, prefix: str, params: dict, build: Callable[[], Pieces]) -> Pieces:
    """Load the pieces for `params` from the cache, or build and store them."""
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    path = directory / f"{prefix}-{cache_key(params)}.npz"
    if path.exists():
        return load_pieces(path)
    pieces = build()
    try:
        save_pieces(path, pieces, params)
    except OSError as err:  # a read-only cache is not fatal: the data is in memory
        import warnings

        warnings.warn(f"could not write the music cache {path}: {err}")
    return pieces
