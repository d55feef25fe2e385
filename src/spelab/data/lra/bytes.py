"""Byte-valued tokens shared by the non-ListOps LRA tasks.

Every value 0..255 (a UTF-8 byte of text, or a grey pixel value) becomes the token id value + 1, so
id 0 is only ever padding: vocab_size = 257 and `pad_id = 0` for text, retrieval, image and pathfinder.
(LRA's text pipeline uses the same map, tfds `ByteTextEncoder`; LRA's image tasks feed the raw pixel
0..255 as id, which we shift by one so that the padding id is never a real pixel.)
"""

from __future__ import annotations

import numpy as np
import torch

BYTE_VOCAB_SIZE = 257  # 256 values + the padding id 0
PAD_ID = 0


def text_to_bytes(text: str | bytes, max_bytes: int | None = None) -> np.ndarray:
    """UTF-8 bytes of `text` (uint8), cut to `max_bytes` when given."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    if max_bytes is not None:
        raw = raw[:max_bytes]
    return np.frombuffer(raw, dtype=np.uint8).copy()


def values_to_ids(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Byte or pixel values 0..255 -> token ids 1..256 (long)."""
    return torch.as_tensor(np.asarray(values), dtype=torch.long) + 1


def encode_text(text: str | bytes, max_length: int | None = None) -> torch.Tensor:
    """Token ids of `text`: UTF-8 byte + 1, truncated to `max_length` (LRA's ByteTextEncoder)."""
    return values_to_ids(text_to_bytes(text, max_length))
