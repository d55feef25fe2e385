"""The Pathfinder generator: image format, both labels, and the label read back from the pixels alone."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from spelab.data.lra.pathfinder_generator import PathfinderGenerator, lra_params, write_pathfinder_dataset
from spelab.data.lra.readers import read_pathfinder_images, read_pathfinder_metadata


def joined(img: np.ndarray, a: np.ndarray, b: np.ndarray, reach: int) -> bool:
    """Flood fill over lit pixels, stepping to any lit pixel within Chebyshev distance `reach`
    (bridging the gaps between a snake's paddles): is the pixel of marker b reached from marker a?"""
    lit = img > 0
    h, w = img.shape
    start, goal = tuple(int(v) for v in np.floor(a)), tuple(int(v) for v in np.floor(b))
    assert lit[start] and lit[goal], "marker centres must be drawn"
    seen = {start}
    todo = deque([start])
    while todo:
        y, x = todo.popleft()
        if (y, x) == goal:
            return True
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                q = (y + dy, x + dx)
                if 0 <= q[0] < h and 0 <= q[1] < w and lit[q] and q not in seen:
                    seen.add(q)
                    todo.append(q)
    return False


@pytest.mark.parametrize("resolution,n", [(32, 40), (128, 6)])
def test_label_agrees_with_flood_fill(resolution, n):
    params = lra_params(resolution)
    gen = PathfinderGenerator(params)
    labels = []
    for i in range(n):
        img, label, markers = gen.generate(np.random.default_rng([7, i]))
        assert img.shape == (resolution, resolution) and img.dtype == np.uint8
        assert img.max() == 255 and img.min() == 0
        assert 0.02 < (img > 0).mean() < 0.6  # curves, not an empty or a filled image
        assert joined(img, markers[0], markers[1], params.link_radius) == bool(label), f"image {i}"
        labels.append(label)
    if resolution == 32:
        assert 0 < sum(labels) < n  # both labels occur


def test_same_seed_same_image_and_seeds_differ():
    gen = PathfinderGenerator(lra_params(32))
    a = gen.generate(np.random.default_rng([0, 3]))
    b = gen.generate(np.random.default_rng([0, 3]))
    c = gen.generate(np.random.default_rng([0, 4]))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_easier_difficulty_has_shorter_targets():
    assert lra_params(32, 6).contour_length == 6 and lra_params(32, 6).num_distractor_snakes == 10
    assert lra_params(128).window == 128 and lra_params(128).link_radius == 4
    with pytest.raises(ValueError, match="32"):
        lra_params(64)


def test_written_layout_reads_back_through_the_official_reader(tmp_path):
    params = lra_params(32)
    split_dir = write_pathfinder_dataset(tmp_path, 12, params, seed=5, images_per_batch=5)
    assert split_dir == tmp_path / "pathfinder32" / "curv_contour_length_14"
    assert sorted(p.name for p in (split_dir / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    rows = read_pathfinder_metadata(split_dir)
    assert [r[0] for r in rows] == [f"imgs/{i // 5}/sample_{i}.png" for i in range(12)]
    images, labels, skipped = read_pathfinder_images(split_dir, 32, rows)
    assert skipped.count == 0
    gen = PathfinderGenerator(params)
    for i in (0, 7, 11):
        img, label, _ = gen.generate(np.random.default_rng([5, i]))
        np.testing.assert_array_equal(images[i], img.reshape(-1))  # PNG round trip is lossless
        assert labels[i] == label
