"""LRA Pathfinder (32x32, 1024 tokens): are the two circles joined by one dashed path? 2 classes.

- `source=official`: `pathfinder32/curv_contour_length_14/` of the LRA release ('hard', the LRA task):
  PNGs + text metadata (readers.py); empty or corrupt images are skipped and counted.
- `source=offline`: the same layout written by our port of the generator (pathfinder_generator.py) with
  LRA's parameters, then read by the same reader. Same generating process, not the released samples,
  so `substitute` is True and the description says which seed and size.
Both: the rows are shuffled with `split_seed` and split 80/10/10 (LRA's TFDS splits are 80/10/10 of one
difficulty). Pixel p is token p + 1; vocab 257.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch

from spelab.data.lra.cache import cached
from spelab.data.lra.common import ByteLRADataModule, check_positive
from spelab.data.lra.dataset import flatten, unflatten
from spelab.data.lra.image import pack_images
from spelab.data.lra.pathfinder_generator import lra_params, params_dict, write_pathfinder_dataset
from spelab.data.lra.readers import find_in_release, read_pathfinder_images, read_pathfinder_metadata
from spelab.errors import ConfigError

log = logging.getLogger(__name__)

DIFFICULTY = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9", "hard": "curv_contour_length_14"}
CONTOUR_LENGTH = {"easy": 6, "intermediate": 9, "hard": 14}


class PathfinderDataModule(ByteLRADataModule):
    num_classes = 2
    task_name = "Pathfinder"
    default_resolution = 32

    def __init__(
        self,
        data_dir: str,
        source: str = "offline",
        max_length: int | None = None,
        resolution: int | None = None,
        difficulty: str = "hard",
        lra_dir: str | None = None,
        num_images: int = 2000,
        data_seed: int = 0,
        split_seed: int = 42,
        **kwargs,
    ) -> None:
        resolution = resolution or self.default_resolution
        if resolution not in (32, 64, 128, 256):
            raise ConfigError("task.datamodule.resolution", resolution, [32, 64, 128, 256])
        if difficulty not in DIFFICULTY:
            raise ConfigError("task.datamodule.difficulty", difficulty, list(DIFFICULTY))
        max_length = max_length or resolution * resolution
        if max_length != resolution * resolution:
            raise ConfigError(
                "task.datamodule.max_length",
                max_length,
                [resolution * resolution],
                f"a {resolution}x{resolution} image is {resolution * resolution} pixels",
            )
        super().__init__(data_dir=data_dir, source=source, max_length=max_length, **kwargs)
        check_positive("task.datamodule.num_images", num_images, allow_none=False)
        if source == "offline" and resolution not in (32, 128):
            raise ConfigError(
                "task.datamodule.resolution",
                resolution,
                [32, 128],
                "the generator knows LRA's parameters for 32 (Pathfinder) and 128 (Path-X)",
            )
        self.resolution, self.difficulty, self.lra_dir = resolution, difficulty, lra_dir
        self.num_images, self.data_seed, self.split_seed = num_images, data_seed, split_seed
        self.relative = f"pathfinder{resolution}/{DIFFICULTY[difficulty]}"
        if source == "official":
            self.substitute = False
            self.description = (
                f"LRA {self.task_name}: released pathfinder{resolution} {difficulty} images "
                f"({resolution * resolution} pixel tokens)"
            )
        else:
            self.substitute = True
            self.description = (
                f"GENERATED {self.task_name} (not the LRA release): our port of the Pathfinder "
                f"generator with LRA's {resolution}x{resolution} {difficulty} parameters, "
                f"{num_images} images, seed {data_seed}"
            )

    def generated_root(self) -> Path:
        """Where the offline images live, in the official layout (one directory per seed and size)."""
        return self.data_dir / "generated" / f"seed{self.data_seed}-n{self.num_images}"

    def ensure_generated(self) -> Path:
        root = self.generated_root()
        params = lra_params(self.resolution, CONTOUR_LENGTH[self.difficulty])
        done = root / f"{self.relative.replace('/', '_')}.done.json"
        if not done.exists():
            log.info("Generating %d Pathfinder%d images into %s (once)", self.num_images, self.resolution, root)
            write_pathfinder_dataset(root, self.num_images, params, seed=self.data_seed)
            done.write_text(json.dumps(params_dict(params)))
        return root

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.source == "official":
            split_dir = find_in_release(self.relative, self.lra_dir, self.data_dir)
            name = f"pathfinder{self.resolution}-official"
        else:
            split_dir = find_in_release(self.relative, self.ensure_generated())
            name = f"pathfinder{self.resolution}-generated"
        params = {"dir": str(split_dir.resolve()), "res": self.resolution, "split_seed": self.split_seed}

        def build():
            rows = read_pathfinder_metadata(split_dir)
            random.Random(self.split_seed).shuffle(rows)
            images, labels, skipped = read_pathfinder_images(split_dir, self.resolution, rows)
            n = len(labels)
            a, b = int(0.8 * n), int(0.9 * n)
            parts = {
                "train": pack_images(images[:a], labels[:a]),
                "val": pack_images(images[a:b], labels[a:b]),
                "test": pack_images(images[b:], labels[b:]),
            }
            out = flatten(parts)
            out["meta/skipped"] = torch.tensor([skipped.count])
            return out

        parts = unflatten(cached(self.cache_dir, name, params, build))
        self.skipped = int(parts.pop("meta")["skipped"])
        return parts

    def info(self) -> dict:
        info = super().info()
        if hasattr(self, "skipped"):
            info["skipped_images"] = self.skipped
        return info
