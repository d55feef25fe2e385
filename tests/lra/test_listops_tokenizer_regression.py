"""Regression: legacy_tokenizer=false keeps ListOps' brackets, true reproduces the paper's tokenizer (the
LRA pipeline's tfds Tokenizer without reserved tokens, which kept alphanumeric runs only: the known LRA
ListOps bug). Checked on rows the official generator wrote, through the DataModule the runs use."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from spelab.data.lra.listops import LEGACY_VOCAB, VOCAB, ListOpsDataModule

FIXTURE = Path(__file__).parent / "listops_upstream" / "seed0_min20_max160.tsv"


def _official_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lra_release" / "listops-1000"
    root.mkdir(parents=True)
    for split in ("train", "val", "test"):
        shutil.copy(FIXTURE, root / f"basic_{split}.tsv")
    return tmp_path


def _decoded(dm: ListOpsDataModule) -> list[list[str]]:
    dm.setup()
    inv = {i: t for t, i in dm.tokenizer.ids.items()}
    ds = dm.datasets["train"]
    return [[inv[i] for i in ds[j]["input_ids"].tolist()] for j in range(len(ds))]


@pytest.mark.parametrize("legacy", [False, True])
def test_tokenizer_choice_on_upstream_rows(tmp_path: Path, legacy: bool) -> None:
    with open(FIXTURE, newline="") as f:
        sources = [row[0] for row in list(csv.reader(f, delimiter="\t"))[1:]]
    dm = ListOpsDataModule(
        str(_official_dir(tmp_path)), source="official", batch_size=4, max_length=200, legacy_tokenizer=legacy
    )
    decoded = _decoded(dm)
    assert len(decoded) == len(sources)
    seen = {t for toks in decoded for t in toks}
    for source, toks in zip(sources, decoded):
        words = [w for w in source.split() if w not in ("(", ")")]
        if legacy:  # operators lose their "[", closing "]" vanish: only operator names and digits remain
            assert toks == [w.lstrip("[") for w in words if w != "]"]
        else:  # every operator keeps its "[", every "]" is a token (X)
            assert toks == ["X" if w == "]" else w for w in words]
    assert seen == set(LEGACY_VOCAB if legacy else VOCAB)
    assert dm.vocab_size == (16 if legacy else 17)
