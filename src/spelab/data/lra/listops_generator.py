"""Port of the official LRA ListOps generator (google-research/long-range-arena,
`lra_benchmarks/data/listops.py`), with an explicit seeded RNG and a deterministic split order.

Algorithm (docs/data.md, "ListOps"): a tree is a leaf (a digit) with probability 0.75, or, below
`max_depth`, an operator node with 2..max_args children; the operator is drawn after the children.
A tree's `length` is its token count after the fixed preprocessing (value = 1, node = 2 + children).
Trees with `min_length < length < max_length` (strict) are kept, deduplicated, and split in order.
For a seed, the set of rows is exactly what upstream writes after `random.seed(seed)` (tested against
fixtures made by the official script); upstream's row order follows `set` iteration (PYTHONHASHSEED),
so the port orders rows canonically instead (first seen, then a seeded shuffle).
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


def generate_tree(
    rng: random.Random, depth: int = 1, max_depth: int = 10, max_args: int = 10, _budget: list[int] | None = None
) -> tuple[Tree | None, int]:
    """One random tree and its length, with the same draws, in the same order, as upstream.

    `_budget` (a one-item list of tokens left) lets `generate` stop *building* a tree once it is too
    long to be accepted: the rest is only counted (`_skip`), making exactly upstream's draws, so the
    random stream, and hence every later tree, stays upstream's. Such a tree is returned as None.
    """
    r = rng.random() if depth < max_depth else 1
    if r > VALUE_P:
        value = rng.choice(VALUES)
        if _budget is not None:
            _budget[0] -= 1
            if _budget[0] < 0:
                return None, 1
        return value, 1
    num_values = rng.randint(2, max_args)
    if _budget is not None:
        _budget[0] -= 2
    children: list | None = []
    length = 2
    for _ in range(num_values):
        if _budget is not None and _budget[0] < 0:
            children = None
            length += _skip(rng, depth + 1, max_depth, max_args)
            continue
        child, child_length = generate_tree(rng, depth + 1, max_depth, max_args, _budget)
        length += child_length
        if child is None:
            children = None
        elif children is not None:
            children.append(child)
    op = rng.choice(OPERATORS)
    if children is None or (_budget is not None and _budget[0] < 0):
        return None, length
    tree: Tree = (op, children[0])
    for child in children[1:]:
        tree = (tree, child)
    return (tree, END), length


def _skip(rng: random.Random, depth: int, max_depth: int, max_args: int) -> int:
    """The length of a subtree, drawing exactly what `generate_tree` draws, without building it.

    Speed matters here (rejected trees can be huge), so CPython's draws are inlined: choice(seq) is
    seq[_randbelow(len(seq))], randint(2, m) is 2 + _randbelow(m - 1), and _randbelow(n) takes
    getrandbits(n.bit_length()) until the value is below n. The generator tests check the streams
    stay upstream's. A stack entry is a node's depth, or 0 for the operator draw after its children.
    """
    uniform, bits = rng.random, rng.getrandbits
    n_values, n_ops, n_args = len(VALUES), len(OPERATORS), max_args - 1
    k_values, k_ops, k_args = n_values.bit_length(), n_ops.bit_length(), n_args.bit_length()
    length, stack = 0, [depth]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        d = pop()
        if d == 0:
            while bits(k_ops) >= n_ops:
                pass
        elif d < max_depth and uniform() <= VALUE_P:
            length += 2
            push(0)
            r = bits(k_args)
            while r >= n_args:
                r = bits(k_args)
            extend([d + 1] * (2 + r))
        else:
            while bits(k_values) >= n_values:
                pass
            length += 1
    return length


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


def generate(
    num_samples: int,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> list[tuple[str, int]]:
    """`num_samples` distinct (source, target) rows with min_length < length < max_length."""
    if min_length + 1 >= max_length:
        raise ValueError(
            f"ListOps generator: need min_length + 1 < max_length, got min_length={min_length}, max_length={max_length}"
        )
    if max_args < 2 or max_depth < 1:
        raise ValueError(
            f"ListOps generator: need max_args >= 2 and max_depth >= 1, got max_args={max_args}, max_depth={max_depth}"
        )
    rng = random.Random(seed)
    rows: dict[str, int] = {}  # insertion-ordered dedup (upstream's set() order is not reproducible)
    attempts, limit = 0, 2000 * num_samples + 100_000
    while len(rows) < num_samples:
        attempts += 1
        tree, length = generate_tree(rng, 1, max_depth, max_args, [max_length - 1])
        if tree is not None and min_length < length < max_length:
            rows.setdefault(to_string(tree), to_value(tree))
        if attempts > limit:
            raise RuntimeError(
                f"ListOps generator: only {len(rows)} of {num_samples} distinct trees with "
                f"{min_length} < length < {max_length} after {attempts} draws; widen the bounds"
            )
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


def generate_splits(
    out_dir: str | Path, num_train: int, num_val: int, num_test: int, task: str = "basic", **kwargs
) -> dict[str, Path]:
    """Generate num_train + num_val + num_test rows and write `{task}_{train,val,test}.tsv` as upstream."""
    rows = generate(num_train + num_val + num_test, **kwargs)
    parts = {
        "train": rows[:num_train],
        "val": rows[num_train : num_train + num_val],
        "test": rows[num_train + num_val :],
    }
    paths = {}
    for split, split_rows in parts.items():
        paths[split] = Path(out_dir) / f"{task}_{split}.tsv"
        write_tsv(paths[split], split_rows)
    return paths
