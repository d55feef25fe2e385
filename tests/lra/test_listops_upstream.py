"""The ListOps port against rows written by the official generator (fixtures made by
scripts/listops_upstream_fixtures.py: upstream's script, seeded, run under several PYTHONHASHSEED values).
Upstream writes rows in `set` order, so the *sets* of rows are compared: they must be equal, all of them."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from spelab.data.lra import listops_generator as gen

FIXTURES = Path(__file__).parent / "listops_upstream"
CASES = sorted(FIXTURES.glob("seed*_min*_max*.tsv"))


def _read(path: Path) -> set[tuple[str, str]]:
    with open(path, newline="") as f:
        return {(src, tgt) for src, tgt in list(csv.reader(f, delimiter="\t"))[1:]}


def test_fixtures_cover_several_seeds_and_the_official_bounds() -> None:
    names = {p.name for p in CASES}
    assert {
        "seed0_min20_max160.tsv",
        "seed1_min20_max160.tsv",
        "seed2_min20_max160.tsv",
        "seed0_min500_max2000.tsv",
    } <= names


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_port_reproduces_every_upstream_row(path: Path) -> None:
    seed, lo, hi = (int(part[len(tag) :]) for part, tag in zip(path.stem.split("_"), ("seed", "min", "max")))
    expected = _read(path)
    got = {(src, str(tgt)) for src, tgt in gen.generate(len(expected), min_length=lo, max_length=hi, seed=seed)}
    same = len(got & expected) / len(expected)
    assert same == 1.0, f"{path.name}: {same:.0%} of upstream's rows reproduced"


@pytest.mark.parametrize("seed", [0, 4])
def test_skipping_a_rejected_tree_draws_what_building_it_draws(seed: int) -> None:
    """`_skip` (count-only, inlined draws) leaves the stream where a full `generate_tree` leaves it."""
    built, skipped = random.Random(seed), random.Random(seed)
    for _ in range(300):
        _, length = gen.generate_tree(built, 2, 10, 10)
        assert gen._skip(skipped, 2, 10, 10) == length
        assert built.random() == skipped.random()
