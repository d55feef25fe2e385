"""ListOps (LRA): official-format TSV reader, tokenizers, and the DataModule.

The same reader serves the released `lra_release/listops-1000/basic_{train,val,test}.tsv` and the files
the generator port writes (source=generated, cached under data_dir keyed by the generator parameters).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from spelab.data.base import SPLITS, SequenceDataModule
from spelab.data.lra import listops_generator
from spelab.errors import DataError, MissingDataError, require_classes

# Fixed upstream tokenizer (google-research/long-range-arena c209b2a4): `]` -> X, round brackets dropped.
VOCAB = ("[MIN", "[MAX", "[MED", "[SM", "X") + tuple(str(v) for v in range(10))
# The pre-fix tfds Tokenizer kept alphanumeric runs only: `[MIN` -> MIN, `]` and brackets vanish.
LEGACY_VOCAB = ("MIN", "MAX", "MED", "SM") + tuple(str(v) for v in range(10))
SOURCES = ("generated", "official")
DOWNLOAD_HINT = (
    "Get the official data with: wget https://storage.googleapis.com/long-range-arena/lra_release.gz "
    "&& tar xzf lra_release.gz, then pass task.datamodule.data_dir=/path/to/lra_release "
    "(or use task.datamodule.source=generated for the offline generator)."
)
_LEGACY_TOKEN = re.compile(r"[^\W_]+")


def tokenize(source: str, legacy: bool = False) -> list[str]:
    """Split a ListOps expression into tokens (fixed tokenizer, or the legacy bracket-dropping one)."""
    if legacy:
        return _LEGACY_TOKEN.findall(source)
    return source.replace("]", "X").replace("(", "").replace(")", "").split()


class ListOpsTokenizer:
    """Token -> id with 0 for padding and a last id for out-of-vocabulary tokens (as tfds TokenTextEncoder)."""

    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self.vocab = LEGACY_VOCAB if legacy else VOCAB
        self.ids = {tok: i + 1 for i, tok in enumerate(self.vocab)}
        self.oov_id = len(self.vocab) + 1
        self.vocab_size = len(self.vocab) + 2  # + padding + OOV

    def encode(self, source: str) -> list[int]:
        return [self.ids.get(tok, self.oov_id) for tok in tokenize(source, self.legacy)]


def read_listops_tsv(path: str | Path) -> list[tuple[str, int]]:
    """Rows (source, target) of an official-format ListOps TSV (header `Source\tTarget`).

    A missing file raises MissingDataError, a malformed one DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, "ListOps file not found", hint=DOWNLOAD_HINT)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["Source", "Target"]:
                raise DataError(path, f"expected the header 'Source<TAB>Target', got {header!r}", line=1)
            for row in reader:
                if not row:
                    continue
                if len(row) != 2:
                    raise DataError(
                        path, f"expected 2 tab-separated fields (Source, Target), got {len(row)}", line=reader.line_num
                    )
                rows.append((row[0], _target(row[1], path, reader.line_num)))
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise DataError(path, f"malformed TSV ({err})") from None
    return rows


def _target(text: str, path: Path, line: int) -> int:
    """A class label 0..9 (written as an int, or a float with an integral value)."""
    try:
        value = float(text)
        label = int(value)
    except (ValueError, OverflowError):
        raise DataError(path, f"Target {text!r} is not an integer", line=line) from None
    if label != value or not 0 <= label <= 9:
        raise DataError(path, f"Target {text!r} is not an integer in 0..9", line=line)
    return label


def find_official_dir(data_dir: str | Path, task: str = "basic") -> Path:
    """The listops-1000 dir under data_dir, accepting lra_release/ and lra_release/lra_release/ layouts."""
    root = Path(data_dir).expanduser()
    candidates = [
        root,
        root / "listops-1000",
        root / "lra_release" / "listops-1000",
        root / "lra_release" / "lra_release" / "listops-1000",
    ]
    for cand in candidates:
        if all((cand / f"{task}_{split}.tsv").is_file() for split in SPLITS):
            return cand
    raise MissingDataError(
        root,
        f"task.datamodule.data_dir: no ListOps files {task}_{{train,val,test}}.tsv in "
        f"{', '.join(str(c) for c in candidates)}",
        hint=DOWNLOAD_HINT,
    )


class ListOpsDataset(Dataset):
    """Token ids stored flat (uint8) with offsets, so 96k x 2000-token splits stay small in memory."""

    def __init__(self, rows: list[tuple[str, int]], tokenizer: ListOpsTokenizer, max_length: int) -> None:
        seqs = [tokenizer.encode(src)[:max_length] for src, _ in rows]
        self.offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum([len(s) for s in seqs])
        self.tokens = np.fromiter((t for s in seqs for t in s), dtype=np.uint8, count=int(self.offsets[-1]))
        self.labels = np.array([target for _, target in rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = torch.from_numpy(self.tokens[self.offsets[i] : self.offsets[i + 1]].astype(np.int64))
        return {"input_ids": ids, "label": int(self.labels[i])}


class ListOpsDataModule(SequenceDataModule):
    """ListOps classification (10 classes) from generated or official TSV files."""

    num_classes = 10

    def __init__(
        self,
        data_dir: str,
        source: str = "generated",
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_length: int = 2000,
        legacy_tokenizer: bool = False,
        seed: int = 0,
        generator: Mapping[str, Any] | None = None,
        task: str = "basic",
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        if source not in SOURCES:
            raise ValueError(f"task.datamodule.source={source!r} is not one of {list(SOURCES)}")
        if max_length <= 0:
            raise ValueError(f"task.datamodule.max_length must be a positive integer, got {max_length}")
        self.source = source
        self.task = task
        self.max_length = int(max_length)
        self.tokenizer = ListOpsTokenizer(legacy=legacy_tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        self.generator_params = _check_generator(dict(generator or {})) if source == "generated" else None
        if source == "official":
            self.files_dir = find_official_dir(data_dir, task)  # fails now, naming the path
            self.substitute = False
            self.description = f"ListOps, official LRA release ({self.files_dir})"
        else:
            self.files_dir = Path(data_dir).expanduser() / f"generated-{_params_key(self.generator_params)}"
            g = self.generator_params
            self.substitute = (g["min_length"], g["max_length"]) != (500, 2000)
            self.description = (
                f"ListOps generated offline by the LRA generator port (seed {g['seed']}, "
                f"{g['num_train']}/{g['num_val']}/{g['num_test']} samples, {g['min_length']} < tokens < "
                f"{g['max_length']}, depth <= {g['max_depth']}, <= {g['max_args']} args)"
            )
        if legacy_tokenizer:
            self.description += "; legacy bracket-dropping tokenizer (as the SPE paper's runs)"

    def prepare_data(self) -> None:
        if self.source == "generated":
            self._ensure_generated()

    def _ensure_generated(self) -> None:
        if all((self.files_dir / f"{self.task}_{s}.tsv").is_file() for s in SPLITS):
            return
        self.files_dir.parent.mkdir(parents=True, exist_ok=True)
        g = dict(self.generator_params)
        counts = {k: g.pop(k) for k in ("num_train", "num_val", "num_test")}
        # Write into a temporary dir and rename it, so parallel jobs never read half-written files.
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.files_dir.parent))
        try:
            listops_generator.generate_splits(tmp, task=self.task, **counts, **g)
            (tmp / "params.json").write_text(json.dumps(self.generator_params, indent=2, sort_keys=True))
            try:
                os.replace(tmp, self.files_dir)
            except OSError:  # another process finished first
                if not self.files_dir.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_split(self, split: str) -> Dataset:
        if self.source == "generated":
            self._ensure_generated()
        path = self.files_dir / f"{self.task}_{split}.tsv"
        rows = read_listops_tsv(path)
        if split == "train":  # a one-class training set is a truncated or wrong file, not a task
            require_classes(path, (label for _, label in rows), min_classes=2)
        return ListOpsDataset(rows, self.tokenizer, self.max_length)

    def info(self) -> dict:
        info = super().info()
        info.update(source=self.source, files=str(self.files_dir), legacy_tokenizer=self.tokenizer.legacy)
        if self.generator_params:
            info["generator"] = dict(self.generator_params)
        return info


_GENERATOR_DEFAULTS = {
    "num_train": 96000,
    "num_val": 2000,
    "num_test": 2000,
    "min_length": 500,
    "max_length": 2000,
    "max_depth": 10,
    "max_args": 10,
    "seed": 0,
}


def _check_generator(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(_GENERATOR_DEFAULTS)
    if unknown:
        raise ValueError(
            f"task.datamodule.generator: unknown keys {sorted(unknown)}; allowed: {sorted(_GENERATOR_DEFAULTS)}"
        )
    merged = {**_GENERATOR_DEFAULTS, **params}
    for key in ("num_train", "num_val", "num_test", "max_depth"):
        if int(merged[key]) <= 0:
            raise ValueError(f"task.datamodule.generator.{key} must be a positive integer, got {merged[key]}")
    if int(merged["max_args"]) < 2:
        raise ValueError(f"task.datamodule.generator.max_args must be >= 2, got {merged['max_args']}")
    if int(merged["min_length"]) < 0 or int(merged["min_length"]) + 1 >= int(merged["max_length"]):
        raise ValueError(
            "task.datamodule.generator: need 0 <= min_length and min_length + 1 < max_length, got "
            f"min_length={merged['min_length']}, max_length={merged['max_length']}"
        )
    return {k: int(v) for k, v in merged.items()}


def _params_key(params: Mapping[str, Any]) -> str:
    text = json.dumps({"generator": "lra-listops-v2", **params}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
