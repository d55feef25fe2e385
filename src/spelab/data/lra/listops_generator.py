"""Port of the official LRA ListOps generator (google-research/long-range-arena,
`lra_benchmarks/data/listops.py`), with an explicit seeded RNG and a deterministic split order.

Algorithm (research/data.md §2.1): a tree is a leaf (a digit) with probability 0.75, or, below
`max_depth`, an operator node with 2..max_args children; the operator is drawn after the children.
A tree's `length` is its token count after the fixed preprocessing (value = 1, node = 2 + children).
Trees with `min_length < length < max_length` (strict) are kept, deduplicated, and split in order.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Union

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
VALUES = tuple(range(10))
VALUE_P = 0.25
END = "]"

Tree = Union[int, str, tuple]


class _TooLong(Exception):
    """Raised once a tree under construction is already too long to be accepted."""


def generate_tree(rng: random.Random, depth: int = 1, max_depth: int = 10, max_args: int = 10,
                  _budget: list[int] | None = None) -> tuple[Tree, int]:
    """One random tree and its length, with the same draws, in the same order, as upstream.

    `_budget` (a one-item list of tokens left) lets `generate` abandon a tree as soon as it cannot be
    accepted; accepted trees have exactly the upstream distribution, only the rejected ones are cut short.
    """
    r = rng.random() if depth < max_depth else 1
    if r > VALUE_P:
        _spend(_budget, 1)
        return rng.choice(VALUES), 1
    _spend(_budget, 2)
    num_values = rng.randint(2, max_args)
    children, length = [], 2
    for _ in range(num_values):
        child, child_length = generate_tree(rng, depth + 1, max_depth, max_args, _budget)
        children.append(child)
        length += child_length
    op = rng.choice(OPERATORS)
    tree: Tree = (op, children[0])
    for child in children[1:]:
        tree = (tree, child)
    return (tree, END), length


def _spend(budget: list[int] | None, tokens: int) -> None:
    if budget is not None:
        budget[0] -= tokens
        if budget[0] < 0:
            raise _TooLong


def to_string(tree: Tree) -> str:
    """Serialise as upstream: `( ( ( [MIN 9 ) 9 ) ] )`."""
    if isinstance(tree, str):
        return tree
    if isinstance(tree, int):
        return str(tree)
    return "( " + to_string(tree[0]) + " " + to_string(tree[1]) + " )"


def to_value(tree: Tree) -> int:
    """Evaluate a tree in the generator's nested-tuple form (upstream's `to_value`)."""
    if isinstance(tree, int):
        return tree
    op, args = _flatten(tree)
    values = [to_value(a) for a in args]
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        ordered = sorted(values)
        mid = len(ordered) // 2
        # np.median then int(): the mean of the two middle values, truncated, for an even count.
        return ordered[mid] if len(ordered) % 2 else int((ordered[mid - 1] + ordered[mid]) / 2)
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown operator {op!r}")


def _flatten(tree: tuple) -> tuple[str, list]:
    """((((op, a1), a2), a3), END) -> (op, [a1, a2, a3])."""
    node, end = tree
    assert end == END
    args = []
    while isinstance(node, tuple) and not (isinstance(node[0], str) and node[0] in OPERATORS):
        node, last = node
        args.append(last)
    op, first = node
    args.append(first)
    return op, args[::-1]


def generate(num_samples: int, min_length: int = 500, max_length: int = 2000, max_depth: int = 10,
             max_args: int = 10, seed: int = 0) -> list[tuple[str, int]]:
    """`num_samples` distinct (source, target) rows with min_length < length < max_length."""
    if min_length + 1 >= max_length:
        raise ValueError(f"ListOps generator: need min_length + 1 < max_length, got min_length={min_length}, "
                         f"max_length={max_length}")
    if max_args < 2 or max_depth < 1:
        raise ValueError(f"ListOps generator: need max_args >= 2 and max_depth >= 1, got max_args={max_args}, "
                         f"max_depth={max_depth}")
    rng = random.Random(seed)
    rows: dict[str, int] = {}  # insertion-ordered dedup (upstream's set() order is not reproducible)
    attempts, limit = 0, 2000 * num_samples + 100_000
    while len(rows) < num_samples:
        attempts += 1
        try:
            tree, length = generate_tree(rng, 1, max_depth, max_args, [max_length - 1])
        except _TooLong:
            continue
        if min_length < length < max_length:
            rows.setdefault(to_string(tree), to_value(tree))
        if attempts > limit:
            raise RuntimeError(f"ListOps generator: only {len(rows)} of {num_samples} distinct trees with "
                               f"{min_length} < length < {max_length} after {attempts} draws; widen the bounds")
    out = list(rows.items())
    rng.shuffle(out)
    return out


def write_tsv(path: str | Path, rows: list[tuple[str, int]]) -> None:
    """The official file format: tab-separated, header `Source\\tTarget`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def generate_splits(out_dir: str | Path, num_train: int, num_val: int, num_test: int, task: str = "basic",
                    **kwargs) -> dict[str, Path]:
    """Generate num_train + num_val + num_test rows and write `{task}_{train,val,test}.tsv` as upstream."""
    rows = generate(num_train + num_val + num_test, **kwargs)
    parts = {"train": rows[:num_train], "val": rows[num_train:num_train + num_val],
             "test": rows[num_train + num_val:]}
    paths = {}
    for split, split_rows in parts.items():
        paths[split] = Path(out_dir) / f"{task}_{split}.tsv"
        write_tsv(paths[split], split_rows)
    return paths
