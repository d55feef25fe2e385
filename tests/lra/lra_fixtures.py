"""Tiny fixtures in the official on-disk formats, written by the tests themselves (no downloads)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

# (id, rating, text): quotes, a tab-free text with non-ASCII, CRLF line ends as in the real file
POSITIVE = [
    "A gorgeous, witty film.",
    'Smart and "funny" — a delight.',
    "Warm, moving and beautifully acted.",
    "The best comedy of the year.",
    "Clever script, great cast.",
]
NEGATIVE = [
    "A dull, lifeless mess.",
    "Tedious and 'clever' only in its own eyes.",
    "Nothing works here.",
    "Badly written and worse acted.",
    "A boring, pointless sequel.",
]


def snippet_rows(n: int = 60) -> list[tuple[int, float, str]]:
    rows = []
    for i in range(1, n + 1):
        pos = i % 2 == 0
        text = (POSITIVE if pos else NEGATIVE)[i % 5] + f" (review {i})"
        rows.append((i, 1.5 if pos else -2.0, text))
    rows.append((n + 1, 0.0, "A neutral sentence."))  # rating 0: dropped
    return rows


def snippets_bytes(rows) -> bytes:
    return "".join(f"{i}\t{r}\t{t}\r\n" for i, r, t in rows).encode("utf-8")


def write_vader_sdist(directory: Path, rows) -> Path:
    """A vaderSentiment sdist with the real nesting: outer .tar.gz -> additional_resources/hutto_ICWSM_2014.tar.gz."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        data = snippets_bytes(rows)
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(path, mode="w:gz") as tar:
        blob = inner.getvalue()
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return path


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(directory: Path, n_train: int = 40, n_test: int = 20, seed: int = 0):
    """Fashion-MNIST IDX files with random 28x28 images; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[split] = (x, y)
    return out


def write_py_corpus(root: Path, n: int = 16) -> None:
    """A tiny tree of Python modules: mod_i imports mod_{i+1} and mod_{i+3}; a package with a relative import."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = f"import mod_{(i + 1) % n}\nfrom mod_{(i + 3) % n} import thing\n\n"
        body += f"def f{i}(x):\n    return mod_{(i + 1) % n}.thing(x) + thing(x) * {i}\n\n\nthing = f{i}\n"
        (root / f"mod_{i}.py").write_text(body)
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("from .inner import helper\n\nVALUE = helper()\n")
    (pkg / "inner.py").write_text("import mod_0\n\ndef helper():\n    return mod_0.thing(1)\n")


def write_aan(directory: Path, rows: dict[str, list[str]]) -> None:
    """new_aan_pairs.<split>.tsv files from raw lines (written verbatim: no quoting)."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        (directory / f"new_aan_pairs.{split}.tsv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_pathfinder_fixture(split_dir: Path, n: int = 10, size: int = 32, seed: int = 0):
    """imgs/0/sample_i.png + metadata/0.npy (text), plus one empty and one corrupt PNG listed in the metadata.

    Returns {relative path: (image, label)} of the good images."""
    rng = np.random.default_rng(seed)
    img_dir = split_dir / "imgs" / "0"
    img_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "metadata").mkdir(parents=True, exist_ok=True)
    good, lines = {}, []
    for i in range(n):
        img = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
        label = i % 2
        Image.fromarray(img, mode="L").save(img_dir / f"sample_{i}.png")
        good[f"imgs/0/sample_{i}.png"] = (img, label)
        lines.append(f"imgs/0 sample_{i}.png {i} {label} 1.0 14 4 2 0.5 1 1")
    (img_dir / f"sample_{n}.png").write_bytes(b"")  # empty file
    (img_dir / f"sample_{n + 1}.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # corrupt
    lines += [
        f"imgs/0 sample_{n}.png {n} 1 1.0 14 4 2 0.5 1 1",
        f"imgs/0 sample_{n + 1}.png {n + 1} 0 1.0 14 4 2 0.5 1 1",
    ]
    (split_dir / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")
    return good
