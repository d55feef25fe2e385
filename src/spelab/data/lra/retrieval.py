"""LRA Retrieval: do two documents link to each other? A two-tower (dual) byte-level task.

- `source=official`: AAN pairs `tsv_data/new_aan_pairs.{train,eval,test}.tsv` of the LRA release
  (readers.read_aan_tsv); each text cut to 10,000 bytes, then each document to `max_length` (4000).
- `source=offline` (a substitute, never LRA): Python standard-library modules, linked when one imports
  the other, import statements removed (stdlib_links.py).
Items hold `input_ids` of shape (2, N): the two documents, each padded with 0.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spelab.data.lra.bytes import text_to_bytes
from spelab.data.lra.cache import cached
from spelab.data.lra.common import ByteLRADataModule
from spelab.data.lra.dataset import pack, unflatten
from spelab.data.lra.readers import find_in_release, read_aan_tsv
from spelab.data.lra.stdlib_links import build_link_pairs, corpus_id
from spelab.errors import MissingDataError

AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


class RetrievalDataModule(ByteLRADataModule):
    num_classes = 2
    dual = True

    def __init__(
        self,
        data_dir: str,
        source: str = "offline",
        max_length: int = 1024,
        lra_dir: str | None = None,
        max_text_bytes: int = 10_000,
        data_seed: int = 0,
        corpus_dir: str | None = None,
        min_module_bytes: int = 1024,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, source=source, max_length=max_length, **kwargs)
        self.lra_dir, self.max_text_bytes, self.data_seed = lra_dir, max_text_bytes, data_seed
        # offline: any tree of Python modules (default: this Python's standard library)
        self.corpus_dir = Path(corpus_dir).expanduser() if corpus_dir else None
        self.min_module_bytes = min_module_bytes
        if source == "official":
            self.substitute = False
            self.description = (
                f"LRA Retrieval: AAN citation-link pairs, bytes, max {max_length} per document, dual encoder"
            )
        else:
            self.substitute = True
            self.description = (
                f"SUBSTITUTE for LRA Retrieval (not LRA): Python stdlib module pairs linked by imports "
                f"(imports removed), bytes, max {max_length} per document, dual encoder"
            )

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.source == "official":
            tsv_dir = find_in_release("tsv_data", self.lra_dir, self.data_dir)
            params = {"dir": str(tsv_dir.resolve()), "max_length": self.max_length, "max_text": self.max_text_bytes}

            def build():
                out = {}
                for split, name in AAN_FILES.items():
                    rows = list(
                        read_aan_tsv(
                            find_in_release(f"tsv_data/{name}", self.lra_dir, self.data_dir), self.max_text_bytes
                        )
                    )
                    seqs = [(text_to_bytes(a, self.max_length), text_to_bytes(b, self.max_length)) for _, a, b in rows]
                    out.update({f"{split}/{k}": v for k, v in pack(seqs, [y for y, _, _ in rows], dual=True).items()})
                return out

            return unflatten(cached(self.cache_dir, "retrieval-aan", params, build))

        corpus = str(self.corpus_dir.resolve()) if self.corpus_dir else corpus_id()
        params = {
            "corpus": corpus,
            "max_length": self.max_length,
            "seed": self.data_seed,
            "min_bytes": self.min_module_bytes,
        }

        def build_offline():
            if self.corpus_dir is not None and not self.corpus_dir.is_dir():
                raise MissingDataError(
                    self.corpus_dir,
                    "task.datamodule.corpus_dir is not a directory",
                    hint="point it at a tree of .py files, or set it to null for the stdlib",
                )
            texts, splits = build_link_pairs(self.corpus_dir, seed=self.data_seed, min_bytes=self.min_module_bytes)
            encoded = {name: text_to_bytes(t, self.max_length) for name, t in texts.items()}
            out = {}
            for split, rows in splits.items():
                packed = pack([(encoded[a], encoded[b]) for _, a, b in rows], [y for y, _, _ in rows], dual=True)
                out.update({f"{split}/{k}": v for k, v in packed.items()})
            return out

        return unflatten(cached(self.cache_dir, "retrieval-stdlib", params, build_offline))
