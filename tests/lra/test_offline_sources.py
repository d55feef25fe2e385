"""Offline stand-ins: VADER snippets (sdist layout), Fashion-MNIST IDX files, the Python-module link corpus."""

from __future__ import annotations

import numpy as np
import pytest

from lra_fixtures import snippet_rows, snippets_bytes, write_fashion_mnist, write_py_corpus, write_vader_sdist
from spelab.data.lra.cache import cache_key, cached
from spelab.data.lra.image import ImageDataModule
from spelab.data.lra.retrieval import RetrievalDataModule
from spelab.data.lra.stdlib_links import build_link_pairs, parse_module
from spelab.data.lra.text import TextDataModule, snippet_split
from spelab.data.lra.vader import ensure_vader_snippets, read_vader_snippets
from spelab.errors import ConfigError, MissingDataError


def decode(item) -> str:
    return bytes((item["input_ids"] - 1).tolist()).decode("utf-8")


def test_vader_snippets_come_out_of_the_nested_sdist(tmp_path):
    rows = snippet_rows(12)
    write_vader_sdist(tmp_path, rows)
    path = ensure_vader_snippets(tmp_path, download=False)
    assert path.read_bytes() == snippets_bytes(rows)
    assert read_vader_snippets(path) == [(i, r, t) for i, r, t in rows]


def test_vader_missing_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingDataError, match="pip download --no-deps --no-binary :all: vaderSentiment"):
        ensure_vader_snippets(tmp_path, download=False)


def test_text_offline_documents_are_same_label_and_split_by_snippet(tmp_path):
    rows = snippet_rows(60)
    write_vader_sdist(tmp_path, rows)
    dm = TextDataModule(
        str(tmp_path), source="offline", max_length=4000, doc_min_bytes=60, doc_max_bytes=120, passes=1, download=False
    )
    dm.setup()
    assert dm.substitute is True and "SUBSTITUTE" in dm.description and "not LRA" in dm.description
    label_of = {t: int(r > 0) for _, r, t in rows if r != 0}
    split_of = {t: snippet_split(i) for i, _, t in rows}
    used = {}
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        assert len(ds) > 0
        for k in range(len(ds)):
            doc, label = decode(ds[k]), ds[k]["label"]
            parts = [t for t in label_of if t in doc]
            assert parts, doc
            for t in parts:
                assert label_of[t] == label and split_of[t] == split
                used[t] = split
    assert "A neutral sentence." not in " ".join(
        decode(dm.datasets[s][k]) for s in ("train",) for k in range(len(dm.datasets[s]))
    )
    assert set(used.values()) == {"train", "val", "test"}


def test_text_rejects_bad_document_range(tmp_path):
    with pytest.raises(ConfigError, match="doc_max_bytes"):
        TextDataModule(str(tmp_path), doc_min_bytes=100, doc_max_bytes=50)
    with pytest.raises(ConfigError, match="task.datamodule.source"):
        TextDataModule(str(tmp_path), source="hub")


def test_fashion_mnist_idx_is_padded_to_1024_tokens(tmp_path):
    arrays = write_fashion_mnist(tmp_path / "fashion-mnist", n_train=20, n_test=5)
    dm = ImageDataModule(str(tmp_path), source="offline", download=False)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [18, 2, 5]
    x, y = arrays["train"]
    for i in (0, 17):
        item = dm.datasets["train"][i]
        grid = item["input_ids"].numpy().reshape(32, 32)
        np.testing.assert_array_equal(grid[2:30, 2:30], x[i].astype(np.int64) + 1)
        assert (grid[:2] == 1).all() and (grid[:, 30:] == 1).all()  # zero pixels -> id 1, never padding
        assert item["label"] == y[i]
    x, y = arrays["test"]
    assert dm.datasets["test"][4]["label"] == y[4]
    assert dm.substitute is True and "Fashion-MNIST" in dm.description


def test_fashion_mnist_missing_names_both_places(tmp_path, monkeypatch):
    import spelab.data.lra.fashion_mnist as fm

    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no_system_copy")
    with pytest.raises(MissingDataError) as err:
        ImageDataModule(str(tmp_path), source="offline", download=False).setup()
    assert str(tmp_path / "fashion-mnist") in str(err.value) and "apt-get install dataset-fashion-mnist" in str(
        err.value
    )


def test_image_rejects_other_lengths(tmp_path):
    with pytest.raises(ConfigError, match="1024"):
        ImageDataModule(str(tmp_path), max_length=512)


def test_parse_module_strips_imports_and_resolves_relative_ones():
    src = "import os, sys\nfrom .inner import (a,\n    b)\nx = os.path.join('a')\n"
    imported, text = parse_module("pkg.mod", src)
    assert {"os", "sys", "pkg.inner", "pkg.inner.a", "pkg.inner.b"} <= imported
    assert text == "x = os.path.join('a')\n"
    imported, _ = parse_module("pkg", "from . import inner\n", is_package=True)
    assert "pkg.inner" in imported


def test_link_pairs_are_import_edges_and_balanced(tmp_path):
    write_py_corpus(tmp_path, n=16)
    texts, splits = build_link_pairs(tmp_path, seed=0, min_bytes=0)
    edges = {frozenset((f"mod_{i}", f"mod_{(i + d) % 16}")) for i in range(16) for d in (1, 3)}
    edges |= {frozenset(("pkg", "pkg.inner")), frozenset(("pkg.inner", "mod_0"))}
    rows = [r for s in splits.values() for r in s]
    assert {frozenset((a, b)) for y, a, b in rows if y == 1} == edges
    assert all(frozenset((a, b)) not in edges for y, a, b in rows if y == 0)
    assert sum(y for y, _, _ in rows) * 2 == len(rows)
    assert all("import" not in t for t in texts.values())


def test_retrieval_offline_on_a_module_tree(tmp_path):
    write_py_corpus(tmp_path / "corpus", n=16)
    dm = RetrievalDataModule(
        str(tmp_path / "home"), source="offline", corpus_dir=str(tmp_path / "corpus"), min_module_bytes=0, max_length=64
    )
    dm.setup()
    assert sum(len(dm.datasets[s]) for s in ("train", "val", "test")) == 2 * 34
    item = dm.datasets["train"][0]
    assert item["input_ids"].shape[0] == 2 and item["input_ids"].shape[1] <= 64
    assert dm.substitute and dm.dual and "SUBSTITUTE" in dm.description


def test_cache_builds_once_per_parameter_set(tmp_path):
    import torch

    calls = []

    def build():
        calls.append(1)
        return {"x": torch.arange(3)}

    a = cached(tmp_path, "t", {"n": 1}, build)
    b = cached(tmp_path, "t", {"n": 1}, build)
    c = cached(tmp_path, "t", {"n": 2}, build)
    assert len(calls) == 2 and torch.equal(a["x"], b["x"]) and torch.equal(a["x"], c["x"])
    assert cache_key("t", {"n": 1}) != cache_key("t", {"n": 2}) and "n=1" in cache_key("t", {"n": 1})
    (tmp_path / f"{cache_key('t', {'n': 1})}.pt").write_bytes(b"truncated")
    cached(tmp_path, "t", {"n": 1}, build)  # a corrupt cache file is rebuilt, not fatal
    assert len(calls) == 3
