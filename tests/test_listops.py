"""ListOps: the generator port against an independent evaluator and an upstream-style reference, the
tokenizers, the official-format reader, the cache, and the errors."""

from __future__ import annotations

import csv
import random
import statistics
from pathlib import Path

import pytest

from spelab.errors import DataError, MissingDataError

from spelab.data.lra import listops_generator as gen
from spelab.data.lra.listops import (
    LEGACY_VOCAB,
    VOCAB,
    ListOpsDataModule,
    ListOpsTokenizer,
    find_official_dir,
    read_listops_tsv,
    tokenize,
)

SMALL = {"min_length": 5, "max_length": 80, "max_depth": 6, "max_args": 5}


def evaluate_source(source: str) -> int:
    """Independent evaluator working on the serialised string (not on the generator's tuples)."""
    tokens = [t for t in source.split() if t not in ("(", ")")]
    stack: list = []
    for tok in tokens:
        if tok.startswith("["):
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            if op == "[MIN":
                value = min(args)
            elif op == "[MAX":
                value = max(args)
            elif op == "[MED":
                value = int(statistics.median(args))  # float median, then truncation, as np.median + int
            elif op == "[SM":
                value = sum(args) % 10
            else:
                raise AssertionError(f"unknown operator {op}")
            if stack:
                stack[-1].append(value)
            else:
                stack.append(value)
        else:
            digit = int(tok)
            if stack and isinstance(stack[-1], list):
                stack[-1].append(digit)
            else:
                stack.append(digit)
    assert len(stack) == 1 and isinstance(stack[0], int)
    return stack[0]


def upstream_generate_tree(depth: int, max_depth: int, max_args: int):
    """The upstream algorithm as published, on the global `random` module (reference for the port)."""
    if depth < max_depth:
        r = random.random()
    else:
        r = 1
    if r > gen.VALUE_P:
        value = random.choice(gen.VALUES)
        return value, 1
    length = 2
    num_values = random.randint(2, max_args)
    values = []
    for _ in range(num_values):
        sub_t, sub_l = upstream_generate_tree(depth + 1, max_depth, max_args)
        values.append(sub_t)
        length += sub_l
    op = random.choice(gen.OPERATORS)
    t = (op, values[0])
    for value in values[1:]:
        t = (t, value)
    t = (t, gen.END)
    return t, length


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generate_tree_makes_the_same_draws_as_upstream(seed: int) -> None:
    random.seed(seed)
    expected = [upstream_generate_tree(1, 10, 10) for _ in range(200)]
    rng = random.Random(seed)
    got = [gen.generate_tree(rng, 1, 10, 10) for _ in range(200)]
    assert got == expected


def test_labels_match_an_independent_evaluation() -> None:
    rows = gen.generate(300, seed=3, **SMALL)
    assert len({src for src, _ in rows}) == 300  # distinct, as upstream's set()
    for source, target in rows:
        assert evaluate_source(source) == target
    # every operator and an even-length MED (mean of the two middle values, truncated) occur, so the
    # check covers them
    assert all(any(op in s for s, _ in rows) for op in gen.OPERATORS)
    med_arities = [n for source, _ in rows for n in operator_arities(source, "[MED")]
    assert any(n % 2 == 0 for n in med_arities) and any(n % 2 for n in med_arities), med_arities


def operator_arities(source: str, operator: str) -> list[int]:
    """How many arguments each `operator` node of a serialised tree has."""
    stack: list[list] = []  # [op, argument count] per open bracket
    found = []
    for tok in (t for t in source.split() if t not in ("(", ")")):
        if tok.startswith("["):
            if stack:
                stack[-1][1] += 1
            stack.append([tok, 0])
        elif tok == "]":
            op, count = stack.pop()
            if op == operator:
                found.append(count)
        elif stack:
            stack[-1][1] += 1
    return found


def test_operator_arities_counts_nested_arguments() -> None:
    assert operator_arities("[MED 1 ( [MAX 2 3 ] ) 4 ]", "[MED") == [3]
    assert operator_arities("[MIN [MED 1 2 ] [MED 3 4 5 6 ] ]", "[MED") == [2, 4]


def test_lengths_are_strictly_within_bounds_and_equal_the_token_count() -> None:
    rng = random.Random(5)
    for _ in range(300):
        tree, length = gen.generate_tree(rng, 1, 8, 6)
        assert len(tokenize(gen.to_string(tree))) == length
    rows = gen.generate(200, seed=1, **SMALL)
    counts = [len(tokenize(s)) for s, _ in rows]
    assert min(counts) > SMALL["min_length"] and max(counts) < SMALL["max_length"]


def test_official_length_bounds_sample() -> None:
    rows = gen.generate(20, min_length=500, max_length=2000, seed=0)
    counts = [len(tokenize(s)) for s, _ in rows]
    assert all(500 < c < 2000 for c in counts)


def test_generation_is_deterministic_per_seed() -> None:
    assert gen.generate(50, seed=7, **SMALL) == gen.generate(50, seed=7, **SMALL)
    assert gen.generate(50, seed=7, **SMALL) != gen.generate(50, seed=8, **SMALL)


def test_fixed_tokenizer_vocabulary() -> None:
    rows = gen.generate(400, seed=0, **SMALL)
    seen = {tok for s, _ in rows for tok in tokenize(s)}
    assert seen == set(VOCAB) and len(VOCAB) == 15
    tok = ListOpsTokenizer()
    assert tok.vocab_size == 17  # + padding 0 + OOV, as tfds TokenTextEncoder
    ids = [i for s, _ in rows for i in tok.encode(s)]
    assert min(ids) >= 1 and max(ids) <= 15
    assert tok.encode("( [MIN 3 FOO ] )") == [tok.ids["[MIN"], tok.ids["3"], tok.oov_id, tok.ids["X"]]


def test_legacy_tokenizer_drops_brackets() -> None:
    source = "( ( ( [MAX 6 ) ( ( [SM 1 ) 4 ) ] ) ) ] )"
    assert tokenize(source, legacy=True) == ["MAX", "6", "SM", "1", "4"]
    assert tokenize(source) == ["[MAX", "6", "[SM", "1", "4", "X", "X"]
    rows = gen.generate(200, seed=0, **SMALL)
    seen = {tok for s, _ in rows for tok in tokenize(s, legacy=True)}
    assert seen == set(LEGACY_VOCAB) and len(LEGACY_VOCAB) == 14
    for s, _ in rows:  # legacy = fixed minus the closing X tokens, operators without "["
        fixed = tokenize(s)
        assert tokenize(s, legacy=True) == [t.lstrip("[") for t in fixed if t != "X"]
    assert ListOpsTokenizer(legacy=True).vocab_size == 16


def _write_official(path: Path, rows: list[tuple[str, int]]) -> None:
    """A TSV as the LRA release ships it: csv.writer with tabs and the Source/Target header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["Source", "Target"])
        for r in rows:
            w.writerow(r)


@pytest.mark.parametrize("layout", ["lra_release", "lra_release/lra_release"])
def test_official_reader_and_layouts(tmp_path: Path, layout: str) -> None:
    rows = {split: gen.generate(6, seed=i, **SMALL) for i, split in enumerate(("train", "val", "test"))}
    for split, split_rows in rows.items():
        _write_official(tmp_path / layout / "listops-1000" / f"basic_{split}.tsv", split_rows)
    assert find_official_dir(tmp_path) == tmp_path / layout / "listops-1000"
    assert read_listops_tsv(tmp_path / layout / "listops-1000" / "basic_val.tsv") == rows["val"]
    dm = ListOpsDataModule(str(tmp_path), source="official", batch_size=4, max_length=40)
    assert dm.substitute is False and dm.vocab_size == 17 and dm.num_classes == 10
    dm.setup()
    tok = ListOpsTokenizer()
    for split, split_rows in rows.items():
        ds = dm.datasets[split]
        assert len(ds) == 6
        for i, (source, target) in enumerate(split_rows):
            item = ds[i]
            assert item["label"] == target
            assert item["input_ids"].tolist() == tok.encode(source)[:40]
    batch = next(iter(dm.val_dataloader()))
    lengths = (~batch["padding_mask"]).sum(1)
    assert batch["input_ids"].shape[0] == 4 and int(lengths.max()) == batch["input_ids"].shape[1]
    assert (batch["input_ids"][batch["padding_mask"]] == 0).all()


def test_missing_official_dir_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingDataError) as err:
        ListOpsDataModule(str(missing), source="official")
    assert str(missing) in str(err.value) and "lra_release" in str(err.value)


def test_bad_header_and_bad_options(tmp_path: Path) -> None:
    bad = tmp_path / "basic_train.tsv"
    bad.write_text("a\tb\n( [MIN 1 ] )\t1\n")
    with pytest.raises(DataError, match="Source"):
        read_listops_tsv(bad)
    bad.write_text("Source\tTarget\n( [MIN 1 ] )\t1\n( [MAX 2 ] )\t12\n")
    with pytest.raises(DataError) as err:
        read_listops_tsv(bad)
    assert err.value.line == 3 and "0..9" in str(err.value)
    with pytest.raises(ValueError, match="task.datamodule.source"):
        ListOpsDataModule(str(tmp_path), source="web")
    with pytest.raises(ValueError, match="generator.num_train"):
        ListOpsDataModule(str(tmp_path), generator={"num_train": 0})
    with pytest.raises(ValueError, match="unknown keys"):
        ListOpsDataModule(str(tmp_path), generator={"depth": 3})


def test_generated_cache_is_keyed_by_parameters(tmp_path: Path) -> None:
    params = dict(num_train=12, num_val=4, num_test=4, **SMALL)
    dm = ListOpsDataModule(str(tmp_path), generator=params, max_length=80)
    dm.prepare_data()
    files = sorted(dm.files_dir.glob("basic_*.tsv"))
    assert [f.name for f in files] == ["basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = ListOpsDataModule(str(tmp_path), generator=params, max_length=80)
    again.prepare_data()
    assert again.files_dir == dm.files_dir and [f.stat().st_mtime_ns for f in files] == mtimes
    other = ListOpsDataModule(str(tmp_path), generator={**params, "seed": 1}, max_length=80)
    assert other.files_dir != dm.files_dir
    # the generated files are read by the official reader, and hold distinct rows across splits
    splits = [read_listops_tsv(dm.files_dir / f"basic_{s}.tsv") for s in ("train", "val", "test")]
    assert [len(s) for s in splits] == [12, 4, 4]
    sources = [src for s in splits for src, _ in s]
    assert len(set(sources)) == 20
    for source, target in (row for s in splits for row in s):
        assert evaluate_source(source) == target


def test_truncation_to_max_length(tmp_path: Path) -> None:
    params = dict(num_train=8, num_val=4, num_test=4, **SMALL)
    dm = ListOpsDataModule(str(tmp_path), generator=params, max_length=10)
    dm.setup()
    assert max(len(dm.datasets["train"][i]["input_ids"]) for i in range(8)) <= 10
