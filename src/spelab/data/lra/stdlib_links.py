"""A document-link corpus on every machine: Python standard-library modules and their imports.

The offline stand-in for LRA Retrieval (AAN citation links): a pair of modules is linked (label 1)
when one imports the other. Import statements are removed from the text (found with `ast`), so the
link must be inferred from the code that uses the other module, as citations must be inferred from
the text of a paper. Negatives are random unlinked pairs, as many as the positives.
"""

from __future__ import annotations

import ast
import os
import random
import sys
import sysconfig
from pathlib import Path

SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3", "turtledemo"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def collect_modules(root: Path, min_bytes: int = 1024) -> dict[str, Path]:
    """{dotted name: file} for every stdlib .py file of at least `min_bytes` outside test dirs."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p in SKIP_DIRS or "-" in p for p in rel.parts[:-1]) or path.stat().st_size < min_bytes:
            continue
        modules[module_name(rel)] = path
    return modules


def parse_module(name: str, source: str, is_package: bool = False) -> tuple[set[str], str] | None:
    """(imported dotted names, source without its import statements), or None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    package = name if is_package else name.rpartition(".")[0]
    imported, drop = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - node.level + 1] if node.level > 1 else pkg
                base = ".".join(pkg + ([base] if base else []))
            imported.add(base)
            imported.update(f"{base}.{a.name}" for a in node.names)
        else:
            continue
        drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = source.splitlines(keepends=True)
    text = "".join(line for i, line in enumerate(lines, 1) if i not in drop)
    return imported, text


def resolve(imported: set[str], names: set[str]) -> set[str]:
    """Corpus modules named by the imports: the name itself, else its longest prefix in the corpus."""
    out = set()
    for dotted in imported:
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in names:
                out.add(cand)
                break
    return out


def build_link_pairs(
    root: Path | None = None, seed: int = 0, min_bytes: int = 1024, fractions: tuple[float, float] = (0.8, 0.1)
) -> tuple[dict[str, str], dict[str, list[tuple[int, str, str]]]]:
    """(texts by module, {split: [(label, module a, module b)]}): balanced pairs, edges split 80/10/10."""
    root = root or stdlib_dir()
    files = collect_modules(root, min_bytes)
    parsed = {}
    for name, path in files.items():
        res = parse_module(name, path.read_text(encoding="utf-8", errors="replace"), path.name == "__init__.py")
        if res is not None and res[1].strip():
            parsed[name] = res
    names = set(parsed)
    edges = set()
    for a, (imported, _) in parsed.items():
        for b in resolve(imported, names):
            if a != b:
                edges.add(tuple(sorted((a, b))))
    rng = random.Random(seed)
    pos = sorted(edges)
    rng.shuffle(pos)
    ordered = sorted(names)
    if len(ordered) < 2:
        raise ValueError(f"need at least 2 parseable modules under {root}, found {len(ordered)}")
    n_neg = min(len(pos), len(ordered) * (len(ordered) - 1) // 2 - len(edges))
    neg = set()
    while len(neg) < n_neg:
        a, b = rng.sample(ordered, 2)
        pair = tuple(sorted((a, b)))
        if pair not in edges:
            neg.add(pair)
    neg_list = sorted(neg)
    rng.shuffle(neg_list)
    splits: dict[str, list[tuple[int, str, str]]] = {}
    n_tr, n_va = int(fractions[0] * len(pos)), int((fractions[0] + fractions[1]) * len(pos))
    for split, lo, hi in (("train", 0, n_tr), ("val", n_tr, n_va), ("test", n_va, len(pos))):
        rows = [(1, *p) for p in pos[lo:hi]] + [(0, *p) for p in neg_list[lo:hi]]
        rows = [(y, a, b) if rng.random() < 0.5 else (y, b, a) for y, a, b in rows]
        rng.shuffle(rows)
        splits[split] = rows
    return {n: t for n, (_, t) in parsed.items()}, splits


def corpus_id() -> str:
    """Which stdlib this is (the corpus differs between Python versions)."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}@{os.fspath(stdlib_dir())}"
