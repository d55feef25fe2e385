"""Loading a Hugging Face dataset (IMDB, CIFAR-10) from the hub cache or a `save_to_disk` directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from spelab.errors import DataError, MissingDataError


def load_hf_splits(
    name_or_path: str,
    splits: Sequence[str],
    columns: Sequence[str],
    cache_dir: str | os.PathLike | None = None,
    hint: str = "",
) -> dict:
    """{split: datasets.Dataset} for `splits`, each checked to have `columns`.

    `name_or_path` is a local directory written by `DatasetDict.save_to_disk` (read offline), or a hub
    id such as `stanfordnlp/imdb` (read from the local hub cache, downloaded once when online).
    """
    import datasets  # heavy import, only for the official sources

    local = Path(name_or_path).expanduser()
    if local.exists():
        try:
            loaded = datasets.load_from_disk(str(local))
        except Exception as err:
            raise DataError(
                local, f"not a `save_to_disk` dataset directory ({type(err).__name__}: {err})", hint=hint
            ) from err
    else:
        try:
            loaded = datasets.load_dataset(name_or_path, cache_dir=None if cache_dir is None else str(cache_dir))
        except Exception as err:
            offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            why = (
                "offline mode is on (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE=1) and it is not in the local cache"
                if offline
                else "it could not be downloaded or read from the cache"
            )
            raise MissingDataError(
                name_or_path,
                f"Hugging Face dataset unavailable: {why} ({type(err).__name__}: {str(err)[:200]})",
                hint=hint,
            ) from err
    missing = [s for s in splits if s not in loaded]
    if missing:
        raise DataError(name_or_path, f"missing split(s) {missing}; found {list(loaded.keys())}", hint=hint)
    out = {}
    for s in splits:
        cols = [c for c in columns if c not in loaded[s].column_names]
        if cols:
            raise DataError(
                name_or_path, f"split {s!r} lacks column(s) {cols}; has {loaded[s].column_names}", hint=hint
            )
        out[s] = loaded[s]
    return out
