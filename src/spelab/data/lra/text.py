"""LRA Text: byte-level binary sentiment classification.

- `source=official`: IMDB (Hugging Face `stanfordnlp/imdb`, columns `text`, `label`), UTF-8 bytes + 1,
  cut to `max_length` (LRA paper: 4000; the LRA code and the SPE runs: 1000). As in LRA, IMDB has no
  validation split, so the test split serves as validation and test.
- `source=offline` (a substitute, never LRA): VADER's Rotten-Tomatoes snippets (vader.py), split by
  snippet id (no snippet in two splits), concatenated into same-polarity "documents" of
  `doc_min_bytes..doc_max_bytes` bytes; real review text, synthetic grouping.
"""

from __future__ import annotations

import logging
import random

import torch

from spelab.data.lra.bytes import text_to_bytes
from spelab.data.lra.cache import cached
from spelab.data.lra.common import ByteLRADataModule, check_positive
from spelab.data.lra.dataset import flatten, pack, unflatten
from spelab.data.lra.hf import load_hf_splits
from spelab.data.lra.vader import ensure_vader_snippets, read_vader_snippets
from spelab.errors import ConfigError

log = logging.getLogger(__name__)

IMDB_HINT = (
    "run once online: `python -c \"import datasets; datasets.load_dataset('stanfordnlp/imdb')\"` "
    "(fills the Hugging Face cache), or pass task.datamodule.hf_dataset=/path/to/a/save_to_disk/dir"
)


def snippet_split(snippet_id: int) -> str:
    """Deterministic 80/10/10 split by snippet id."""
    r = snippet_id % 10
    return "test" if r == 0 else "val" if r == 1 else "train"


def group_documents(
    texts: list[str], labels: list[int], rng: random.Random, min_bytes: int, max_bytes: int, passes: int = 1
) -> tuple[list[str], list[int]]:
    """Concatenate same-label texts (each used once per pass) into documents of min..max_bytes bytes."""
    docs, doc_labels = [], []
    for label in sorted(set(labels)):
        pool = [t for t, y in zip(texts, labels) if y == label]
        for _ in range(passes):
            rng.shuffle(pool)
            target, parts, size = rng.randint(min_bytes, max_bytes), [], 0
            for t in pool:
                parts.append(t)
                size += len(t.encode("utf-8")) + 1
                if size >= target:
                    docs.append(" ".join(parts))
                    doc_labels.append(label)
                    target, parts, size = rng.randint(min_bytes, max_bytes), [], 0
            if parts and size >= min_bytes // 2:
                docs.append(" ".join(parts))
                doc_labels.append(label)
    order = list(range(len(docs)))
    rng.shuffle(order)
    return [docs[i] for i in order], [doc_labels[i] for i in order]


class TextDataModule(ByteLRADataModule):
    num_classes = 2

    def __init__(
        self,
        data_dir: str,
        source: str = "offline",
        max_length: int = 512,
        hf_dataset: str = "stanfordnlp/imdb",
        hf_cache_dir: str | None = None,
        doc_min_bytes: int = 400,
        doc_max_bytes: int = 1200,
        passes: int = 4,
        data_seed: int = 0,
        download: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, source=source, max_length=max_length, **kwargs)
        check_positive("task.datamodule.doc_min_bytes", doc_min_bytes, allow_none=False)
        check_positive("task.datamodule.passes", passes, allow_none=False)
        if doc_max_bytes < doc_min_bytes:
            raise ConfigError("task.datamodule.doc_max_bytes", doc_max_bytes, f">= doc_min_bytes={doc_min_bytes}")
        self.hf_dataset, self.hf_cache_dir = hf_dataset, hf_cache_dir
        self.doc_bytes, self.passes, self.data_seed, self.download = (
            (doc_min_bytes, doc_max_bytes),
            passes,
            data_seed,
            download,
        )
        if source == "official":
            self.substitute = False
            self.description = (
                f"LRA Text: IMDB reviews ({hf_dataset}) as UTF-8 bytes, max {max_length}; "
                "validation = test split, as in LRA"
            )
        else:
            self.substitute = True
            self.description = (
                f"SUBSTITUTE for LRA Text (not LRA): VADER Rotten-Tomatoes review snippets grouped "
                f"into same-polarity documents of {doc_min_bytes}-{doc_max_bytes} bytes, bytes, "
                f"max {max_length}"
            )

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        return self._load_official() if self.source == "official" else self._load_offline()

    def _load_official(self):
        params = {"hf_dataset": self.hf_dataset, "max_length": self.max_length}

        def build():
            ds = load_hf_splits(self.hf_dataset, ("train", "test"), ("text", "label"), self.hf_cache_dir, IMDB_HINT)
            out = {}
            for split in ("train", "test"):
                seqs = [text_to_bytes(t, self.max_length) for t in ds[split]["text"]]
                out[split] = pack(seqs, [int(y) for y in ds[split]["label"]])
            return flatten(out)

        parts = unflatten(cached(self.cache_dir, "text-official", params, build))
        return {"train": parts["train"], "val": parts["test"], "test": parts["test"]}

    def _load_offline(self):
        params = {
            "max_length": self.max_length,
            "doc_min": self.doc_bytes[0],
            "doc_max": self.doc_bytes[1],
            "passes": self.passes,
            "seed": self.data_seed,
        }

        def build():
            rows = read_vader_snippets(ensure_vader_snippets(self.data_dir, download=self.download))
            rows = [r for r in rows if r[1] != 0]  # neutral snippets carry no polarity
            out = {}
            for i, split in enumerate(("train", "val", "test")):
                texts = [t for sid, _, t in rows if snippet_split(sid) == split]
                labels = [int(rating > 0) for sid, rating, _ in rows if snippet_split(sid) == split]
                docs, doc_labels = group_documents(
                    texts,
                    labels,
                    random.Random(self.data_seed * 3 + i),
                    *self.doc_bytes,
                    passes=self.passes if split == "train" else 1,
                )
                packed = pack([text_to_bytes(d, self.max_length) for d in docs], doc_labels)
                out.update({f"{split}/{k}": v for k, v in packed.items()})
            return out

        return unflatten(cached(self.cache_dir, "text-vader", params, build))
