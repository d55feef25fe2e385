"""Official-format readers on fixtures the tests write: AAN TSV, Pathfinder PNG + metadata, HF IMDB/CIFAR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lra_fixtures import write_aan, write_pathfinder_fixture
from spelab.data.lra.bytes import PAD_ID
from spelab.data.lra.image import ImageDataModule
from spelab.data.lra.pathfinder import PathfinderDataModule
from spelab.data.lra.pathx import PathXDataModule
from spelab.data.lra.readers import read_aan_tsv, read_pathfinder_images
from spelab.data.lra.retrieval import RetrievalDataModule
from spelab.data.lra.text import TextDataModule
from spelab.errors import DataError, MissingDataError

# tabs separate the 5 fields; quotes are text (QUOTE_NONE); one malformed row (4 fields) is skipped
AAN_ROWS = {
    "train": [
        "1.0\tP01\tP02\tWe cite \"Smith et al.\" here\tA paper about 'parsing'",
        '0.0\tP03\tP04\t"unbalanced quote\tplain text',
        "1.0\tbroken\trow\tonly four",
    ],
    "eval": ["0\tP05\tP06\tshort\tlonger second document"],
    "test": ["1.0\tP07\tP08\tx\ty"],
}


def ids(text: str, n: int | None = None) -> list[int]:
    return [b + 1 for b in text.encode()[:n]]


def test_aan_reader_keeps_quotes_and_skips_bad_rows(tmp_path):
    write_aan(tmp_path, AAN_ROWS)
    rows = list(read_aan_tsv(tmp_path / "new_aan_pairs.train.tsv"))
    assert rows == [
        (1, 'We cite "Smith et al." here', "A paper about 'parsing'"),
        (0, '"unbalanced quote', "plain text"),
    ]


def test_aan_reader_cuts_each_text_to_max_bytes(tmp_path):
    write_aan(tmp_path, AAN_ROWS)
    ((label, a, b),) = read_aan_tsv(tmp_path / "new_aan_pairs.eval.tsv", max_text_bytes=4)
    assert (label, a, b) == (0, "shor", "long")


@pytest.mark.parametrize("nesting", ["", "lra_release", "lra_release/lra_release"])
def test_retrieval_official_yields_dual_tokens(tmp_path, nesting):
    write_aan(tmp_path / nesting / "tsv_data", AAN_ROWS)
    dm = RetrievalDataModule(str(tmp_path / "cache_home"), source="official", lra_dir=str(tmp_path), max_length=12)
    dm.setup()
    train = dm.datasets["train"]
    assert len(train) == 2 and [train[i]["label"] for i in range(2)] == [1, 0]
    item = train[0]["input_ids"]
    assert item.shape == (2, 12)
    assert item[0].tolist() == ids('We cite "Smith et al." here', 12)
    assert item[1].tolist() == ids("A paper about 'parsing'", 12)
    item = train[1]["input_ids"]  # documents of 12 and 10 bytes: the shorter one is padded with 0
    assert item[0].tolist() == ids('"unbalanced quote', 12) and item[1].tolist() == ids("plain text") + [PAD_ID] * 2
    batch = dm.collate([train[0], train[1]])
    assert batch["input_ids"].shape == (2, 2, 12)
    assert batch["padding_mask"][1, 1].tolist() == [False] * 10 + [True] * 2
    assert not batch["padding_mask"][0].any()
    assert dm.datasets["val"][0]["label"] == 0 and len(dm.datasets["test"]) == 1
    assert dm.substitute is False and dm.dual is True


def test_retrieval_official_missing_names_the_paths(tmp_path):
    dm = RetrievalDataModule(str(tmp_path / "d"), source="official", lra_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError) as err:
        dm.setup()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "tsv_data") in msg and "lra_release/lra_release/tsv_data" in msg
    assert "lra_release.gz" in msg


def test_pathfinder_reader_skips_empty_and_corrupt_images(tmp_path):
    good = write_pathfinder_fixture(tmp_path, n=6)
    images, labels, skipped = read_pathfinder_images(tmp_path, 32)
    assert skipped.count == 2 and set(skipped.reasons) == {"empty file", "unreadable image"}
    assert images.shape == (6, 1024) and images.dtype == np.uint8
    for i, (rel, (img, label)) in enumerate(good.items()):
        np.testing.assert_array_equal(images[i], img.reshape(-1))
        assert labels[i] == label


def test_pathfinder_reader_fails_when_too_many_are_bad(tmp_path):
    write_pathfinder_fixture(tmp_path, n=0)  # only the empty and the corrupt image
    with pytest.raises(DataError, match="no usable records"):
        read_pathfinder_images(tmp_path, 32)


def test_pathfinder_official_split_tokens_and_labels(tmp_path):
    good = write_pathfinder_fixture(
        tmp_path / "lra_release" / "lra_release" / "pathfinder32" / "curv_contour_length_14", n=20
    )
    dm = PathfinderDataModule(str(tmp_path / "home"), source="official", lra_dir=str(tmp_path))
    dm.setup()
    sizes = [len(dm.datasets[s]) for s in ("train", "val", "test")]
    assert sizes == [16, 2, 2] and dm.info()["skipped_images"] == 2
    by_pixels = {img.tobytes(): label for img, label in good.values()}
    seen = set()
    for split in ("train", "val", "test"):
        for i in range(len(dm.datasets[split])):
            item = dm.datasets[split][i]
            pixels = (item["input_ids"] - 1).to(torch.uint8).numpy()
            assert item["input_ids"].min() >= 1 and by_pixels[pixels.tobytes()] == item["label"]
            seen.add(pixels.tobytes())
    assert len(seen) == 20  # every good image exactly once across the splits


def test_pathfinder_official_missing_names_the_path(tmp_path):
    with pytest.raises(MissingDataError, match="pathfinder128/curv_contour_length_14"):
        PathXDataModule(str(tmp_path), source="official").setup()


def test_pathfinder_metadata_without_images_dir(tmp_path):
    (tmp_path / "pathfinder32" / "curv_contour_length_14" / "metadata").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="imgs"):
        PathfinderDataModule(str(tmp_path), source="official").setup()


# ---------------------------------------------------------------------------------- Hugging Face
def test_imdb_from_a_saved_hub_schema_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = {"train": ["Great film!", "Awful. Just “awful”."], "test": ["Fine", "Bad bad bad"]}
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict({"text": t, "label": [1, 0]}) for s, t in texts.items()})
    dd.save_to_disk(str(tmp_path / "imdb"))
    dm = TextDataModule(str(tmp_path / "home"), source="official", hf_dataset=str(tmp_path / "imdb"), max_length=8)
    dm.setup()
    assert dm.substitute is False and "IMDB" in dm.description
    assert dm.datasets["train"][0]["input_ids"].tolist() == ids("Great film!", 8)
    assert dm.datasets["train"][1]["input_ids"].tolist() == ids("Awful. Just “awful”.", 8)
    assert [dm.datasets["val"][i]["label"] for i in range(2)] == [1, 0]  # LRA: validation = test split
    assert dm.datasets["test"][1]["input_ids"].tolist() == ids("Bad bad bad", 8)


def test_cifar_from_a_saved_hub_schema_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(5)]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})

    def split(xs, ys):
        return datasets.Dataset.from_dict({"img": [Image.fromarray(a) for a in xs], "label": ys}, features=features)

    datasets.DatasetDict({"train": split(arrays[:4], [3, 1, 4, 1]), "test": split(arrays[4:], [5])}).save_to_disk(
        str(tmp_path / "cifar")
    )
    dm = ImageDataModule(
        str(tmp_path / "home"), source="official", hf_dataset=str(tmp_path / "cifar"), num_train_official=3
    )
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    # independent float64 formula, checked away from integer boundaries
    exact = (arrays[3].astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])) / 255 * 255.5
    got = (dm.datasets["val"][0]["input_ids"] - 1).numpy().reshape(32, 32)
    clear = np.abs(exact - np.round(exact)) > 1e-3
    np.testing.assert_array_equal(got[clear], np.floor(exact[clear]))
    assert dm.datasets["val"][0]["label"] == 1 and dm.datasets["test"][0]["label"] == 5


def test_hf_offline_without_cache_fails_clearly(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dm = TextDataModule(
        str(tmp_path), source="official", hf_dataset="stanfordnlp/imdb", hf_cache_dir=str(tmp_path / "empty_cache")
    )
    with pytest.raises(MissingDataError) as err:
        dm.setup()
    msg = str(err.value)
    assert "stanfordnlp/imdb" in msg and "offline" in msg and "load_dataset('stanfordnlp/imdb')" in msg


def test_hf_saved_dataset_without_required_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({"review": ["x"], "label": [0]}) for s in ("train", "test")}
    )
    dd.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match="lacks column"):
        TextDataModule(str(tmp_path / "h"), source="official", hf_dataset=str(tmp_path / "bad")).setup()
