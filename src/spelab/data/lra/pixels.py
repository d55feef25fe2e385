"""Pixel preprocessing shared by the image tasks: TF's grayscale and zero padding."""

from __future__ import annotations

import numpy as np

TF_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)


def tf_rgb_to_grayscale(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint8 (...), exactly as LRA's `tf.image.rgb_to_grayscale` on a uint8 image.

    TF converts to float32 in [0, 1] (x * (1/255)), takes the weighted sum in float32, and converts back
    with `convert_image_dtype`: multiply by 255.5 and truncate. So gray = trunc((w . rgb) / 255 * 255.5),
    which is not floor(w . rgb): white (255, 255, 255) gives 255, not 254.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected a uint8 array with a last axis of 3 (RGB), got {rgb.dtype} {rgb.shape}")
    flt = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    gray = flt @ TF_GRAY_WEIGHTS
    return (gray * np.float32(255.5)).astype(np.uint8)


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (M, h, w) images centrally to (M, size, size)."""
    m, h, w = images.shape
    if h > size or w > size:
        raise ValueError(f"images of {h}x{w} do not fit in {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((m, size, size), dtype=images.dtype)
    out[:, top : top + h, left : left + w] = images
    return out
