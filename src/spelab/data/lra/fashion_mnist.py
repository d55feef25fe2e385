"""Fashion-MNIST (Zalando, MIT licence) from Debian's `dataset-fashion-mnist` package: IDX files.

`/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` when the package is
installed (`apt-get install dataset-fashion-mnist`); otherwise, when allowed, the .deb is fetched with
`apt-get download` (no root needed) and unpacked with `dpkg-deb -x` into the data directory.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spelab.errors import DataError, MissingDataError

log = logging.getLogger(__name__)

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HINT = (
    "install Debian's package: `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/"
    "fashion-mnist), or copy its four *-ubyte.gz files into DATA_DIR/fashion-mnist"
)


def has_files(d: Path) -> bool:
    return all((d / f).is_file() for pair in FILES.values() for f in pair)


def fetch_deb(dest: Path) -> Path:
    """`apt-get download` + `dpkg-deb -x` the package into `dest`; returns the IDX directory."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise MissingDataError(dest, "Fashion-MNIST not found and apt-get/dpkg-deb are unavailable", hint=HINT)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                ["apt-get", "download", "dataset-fashion-mnist"],
                cwd=tmp,
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
            debs = list(Path(tmp).glob("dataset-fashion-mnist_*.deb"))
            subprocess.run(
                ["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "root")],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, IndexError, OSError) as err:
            detail = getattr(err, "stderr", "") or err
            raise MissingDataError(
                dest, f"could not fetch the Debian package ({str(detail).strip()[-300:]})", hint=HINT
            ) from err
        src = Path(tmp) / "root" / SYSTEM_DIR.relative_to("/")
        dest.mkdir(parents=True, exist_ok=True)
        for pair in FILES.values():
            for f in pair:
                shutil.copyfile(src / f, dest / f)
    return dest


def find_fashion_mnist(data_dir: str | os.PathLike, download: bool = True) -> Path:
    local = Path(data_dir).expanduser() / "fashion-mnist"
    for d in (local, SYSTEM_DIR):
        if has_files(d):
            return d
    if not download:
        raise MissingDataError(local, f"Fashion-MNIST IDX files not found in {local} or {SYSTEM_DIR}", hint=HINT)
    log.info("Fashion-MNIST not installed; fetching Debian's dataset-fashion-mnist into %s", local)
    return fetch_deb(local)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX array (uint8 data; the magic number's 3rd byte gives the type, the 4th the rank)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(path, "not an unsigned-byte IDX file (bad magic number)", hint=HINT)
    rank = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise DataError(
            path, f"truncated: header says {dims} ({int(np.prod(dims))} values), found {data.size}", hint=HINT
        )
    return data.reshape(dims)


def load_fashion_mnist(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (M, 28, 28), labels (M,)) of 'train' (60k) or 'test' (10k)."""
    images, labels = (read_idx(directory / f) for f in FILES[split])
    if len(images) != len(labels):
        raise DataError(directory, f"{split}: {len(images)} images but {len(labels)} labels", hint=HINT)
    return images, labels.astype(np.int64)
