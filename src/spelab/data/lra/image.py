"""LRA Image: 10-way classification of a grey image read as a sequence of 1024 pixel tokens.

- `source=official`: CIFAR-10 (Hugging Face `uoft-cs/cifar10`, columns `img`, `label`), grey as TF
  computes it (pixels.tf_rgb_to_grayscale); train = train[:45000], val = train[45000:], test = test.
- `source=offline` (a substitute, never LRA): Fashion-MNIST (fashion_mnist.py), 28x28 zero-padded to
  32x32, so the sequence shape is LRA's; train = train[:54000], val = train[54000:], test = test.
Pixel p is token p + 1 (bytes.py), so vocab_size is 257 and id 0 is padding only.
"""

from __future__ import annotations

import numpy as np
import torch

from spelab.data.lra.cache import cached
from spelab.data.lra.common import ByteLRADataModule
from spelab.data.lra.dataset import flatten, unflatten
from spelab.data.lra.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from spelab.data.lra.hf import load_hf_splits
from spelab.data.lra.pixels import pad_to, tf_rgb_to_grayscale
from spelab.errors import ConfigError, DataError

CIFAR_HINT = (
    "run once online: `python -c \"import datasets; datasets.load_dataset('uoft-cs/cifar10')\"` "
    "(fills the Hugging Face cache), or pass task.datamodule.hf_dataset=/path/to/a/save_to_disk/dir"
)


def pack_images(images: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    flat = images.reshape(len(images), -1)
    return {
        "values": torch.from_numpy(np.ascontiguousarray(flat)),
        "lengths": torch.full((len(flat),), flat.shape[1], dtype=torch.long),
        "labels": torch.as_tensor(labels, dtype=torch.long),
    }


def cifar_gray(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (M, 32, 32) grey images, labels) of a HF CIFAR-10 split."""
    images = []
    for i, img in enumerate(dataset["img"]):
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
        if arr.shape != (32, 32, 3):
            raise DataError("cifar10", f"image {i} has shape {arr.shape}, expected (32, 32, 3)")
        images.append(tf_rgb_to_grayscale(arr))
    return np.stack(images), np.asarray(dataset["label"], dtype=np.int64)


class ImageDataModule(ByteLRADataModule):
    num_classes = 10

    def __init__(
        self,
        data_dir: str,
        source: str = "offline",
        max_length: int = 1024,
        hf_dataset: str = "uoft-cs/cifar10",
        hf_cache_dir: str | None = None,
        num_train_official: int = 45000,
        download: bool = True,
        **kwargs,
    ) -> None:
        if max_length != 1024:
            raise ConfigError("task.datamodule.max_length", max_length, [1024], "an image is 32x32 = 1024 pixels")
        super().__init__(data_dir=data_dir, source=source, max_length=max_length, **kwargs)
        self.hf_dataset, self.hf_cache_dir, self.download = hf_dataset, hf_cache_dir, download
        self.num_train_official = num_train_official
        if source == "official":
            self.substitute = False
            self.description = f"LRA Image: CIFAR-10 ({hf_dataset}) in TF grayscale, 1024 pixel tokens"
        else:
            self.substitute = True
            self.description = (
                "SUBSTITUTE for LRA Image (not LRA): Fashion-MNIST padded to 32x32, 1024 pixel tokens, 10 classes"
            )

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.source == "official":
            params = {"hf_dataset": self.hf_dataset, "n_train": self.num_train_official}

            def build():
                ds = load_hf_splits(self.hf_dataset, ("train", "test"), ("img", "label"), self.hf_cache_dir, CIFAR_HINT)
                train_x, train_y = cifar_gray(ds["train"])
                test_x, test_y = cifar_gray(ds["test"])
                n = min(self.num_train_official, len(train_x))
                parts = {
                    "train": pack_images(train_x[:n], train_y[:n]),
                    "val": pack_images(train_x[n:], train_y[n:]),
                    "test": pack_images(test_x, test_y),
                }
                return flatten(parts)

            return unflatten(cached(self.cache_dir, "image-cifar10", params, build))

        def build_offline():
            directory = find_fashion_mnist(self.data_dir, download=self.download)
            train_x, train_y = load_fashion_mnist(directory, "train")
            test_x, test_y = load_fashion_mnist(directory, "test")
            n = len(train_x) * 9 // 10
            train_x, test_x = pad_to(train_x, 32), pad_to(test_x, 32)
            parts = {
                "train": pack_images(train_x[:n], train_y[:n]),
                "val": pack_images(train_x[n:], train_y[n:]),
                "test": pack_images(test_x, test_y),
            }
            return flatten(parts)

        return unflatten(cached(self.cache_dir, "image-fashion-mnist", {"size": 32}, build_offline))
