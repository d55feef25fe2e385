"""Byte tokens and TF's grayscale against hand-computed values and a float64 re-computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spelab.data.lra.bytes import BYTE_VOCAB_SIZE, encode_text, values_to_ids
from spelab.data.lra.pixels import pad_to, tf_rgb_to_grayscale


def test_bytes_are_utf8_plus_one():
    # "A" = 0x41 = 65 -> 66; "é" = C3 A9 = 195, 169 -> 196, 170; "\t" = 9 -> 10
    assert encode_text("Aé\t").tolist() == [66, 196, 170, 10]
    assert encode_text(b"\x00\xff").tolist() == [1, 256]  # extremes: 0 never appears, max id 256
    assert BYTE_VOCAB_SIZE == 257


def test_truncation_counts_bytes_not_characters():
    assert encode_text("éé", max_length=3).tolist() == [196, 170, 196]
    assert encode_text("abc", max_length=10).tolist() == [98, 99, 100]


def test_values_to_ids_shifts_pixels():
    assert values_to_ids(np.array([0, 17, 255], dtype=np.uint8)).tolist() == [1, 18, 256]
    assert values_to_ids(np.zeros(3, dtype=np.uint8)).dtype == torch.long


@pytest.mark.parametrize(
    "rgb,gray",
    [
        ((255, 255, 255), 255),  # 0.9999 * 255.5 = 255.47 (floor(w.rgb) would say 254)
        ((100, 150, 200), 141),  # (29.89 + 88.05 + 22.8) / 255 * 255.5 = 141.016 (floor(w.rgb) = 140)
        ((255, 0, 0), 76),  # 0.2989 * 255.5 = 76.37
        ((0, 255, 0), 149),  # 0.5870 * 255.5 = 149.98
        ((0, 0, 255), 29),  # 0.1140 * 255.5 = 29.13
        ((0, 0, 0), 0),
    ],
)
def test_tf_grayscale_hand_computed(rgb, gray):
    assert int(tf_rgb_to_grayscale(np.array([rgb], dtype=np.uint8))[0]) == gray


def test_tf_grayscale_matches_float64_formula():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(4000, 3), dtype=np.uint8)
    exact = (rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])) / 255.0 * 255.5
    got = tf_rgb_to_grayscale(rgb).astype(np.int64)
    clear = np.abs(exact - np.round(exact)) > 1e-3  # float32 may differ from float64 right at an integer
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(got[clear], np.floor(exact[clear]).astype(np.int64))


def test_tf_grayscale_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8"):
        tf_rgb_to_grayscale(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="last axis of 3"):
        tf_rgb_to_grayscale(np.zeros((2, 4), dtype=np.uint8))


def test_pad_to_centres_with_zeros():
    x = np.full((2, 28, 28), 7, dtype=np.uint8)
    y = pad_to(x, 32)
    assert y.shape == (2, 32, 32) and y.sum() == x.sum()
    assert (y[:, 2:30, 2:30] == 7).all() and y[:, :2].max() == 0 and y[:, :, 30:].max() == 0
    with pytest.raises(ValueError, match="do not fit"):
        pad_to(np.zeros((1, 33, 33), dtype=np.uint8), 32)
    assert math.isclose(float(y.mean()), 7 * 28 * 28 / 1024)
