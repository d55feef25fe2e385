"""Typed errors for spelab: every message names what is wrong, the bad value and what is allowed.

All errors derive from `SpelabError`, so `run.py` can print a one-paragraph message instead of a
traceback deep in a library, and tests can check the type. Each also derives from the closest
builtin (ValueError, RuntimeError, OSError) so existing `except ValueError:` code keeps working.
They pickle (submitit sends exceptions back from SLURM jobs), which custom __init__ signatures
break unless `__reduce__` returns the constructor arguments.

Data readers: raise `DataError(path, problem, line=..., hint=...)` for a fatal problem (a missing
official directory is a `MissingDataError` with a hint on how to get the data); count skippable
problems with `SkippedRecords` and report them once per file.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence


class SpelabError(Exception):
    """Base of all spelab errors; `str(err)` is the complete, user-facing message."""

    def __init__(self, message: str, *init_args: Any) -> None:
        super().__init__(message)
        self._init_args = init_args

    def __reduce__(self):  # keep the typed fields across pickling (submitit, multiprocessing)
        return (self.__class__, self._init_args)


def _fmt_allowed(allowed: Any) -> str:
    if isinstance(allowed, (list, tuple, set, frozenset)):
        return ", ".join(
            str(a) for a in (sorted(allowed, key=str) if isinstance(allowed, (set, frozenset)) else allowed)
        )
    return str(allowed)


class ConfigError(SpelabError, ValueError):
    """A configuration value is out of range, unknown, or incompatible with another one.

    ConfigError("model.num_heads", 3, "a divisor of model.d_model=128")
    -> "Invalid config: model.num_heads=3; allowed: a divisor of model.d_model=128"
    """

    def __init__(self, key: str, value: Any, allowed: Any, reason: str | None = None) -> None:
        msg = f"Invalid config: {key}={value!r}; allowed: {_fmt_allowed(allowed)}"
        if reason:
            msg += f" ({reason})"
        super().__init__(msg, key, value, allowed, reason)
        self.key, self.value, self.allowed, self.reason = key, value, allowed, reason


class DataError(SpelabError, ValueError):
    """A data file or directory is missing, truncated or malformed.

    DataError("/d/basic_train.tsv", "expected 2 tab-separated fields, got 1", line=17,
              hint="re-download lra_release.gz")
    -> "Data error in /d/basic_train.tsv, line 17: expected 2 tab-separated fields, got 1. Hint: ..."
    """

    def __init__(
        self,
        path: str | os.PathLike,
        problem: str = "unreadable data",
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{os.fspath(path)}" + (f", line {line}" if line is not None else "")
        msg = f"Data error in {where}: {problem}"
        if hint:
            msg += f". Hint: {hint}"
        super().__init__(msg, path, problem, line, hint)
        self.path, self.problem, self.line, self.hint = os.fspath(path), problem, line, hint


class MissingDataError(DataError):
    """An official data file or directory does not exist; the hint says how to get it."""

    def __init__(
        self, path: str | os.PathLike, problem: str = "not found", line: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(path, problem, line, hint)


class CheckpointMismatchError(SpelabError, ValueError):
    """A checkpoint was written by another configuration; `differences` maps key -> (checkpoint, current)."""

    def __init__(
        self, differences: Mapping[str, tuple[Any, Any]], path: str | os.PathLike | None = None, hint: str | None = None
    ) -> None:
        diffs = dict(differences)
        where = f" {os.fspath(path)}" if path is not None else ""
        lines = [f"  {k}: checkpoint={a!r} current={b!r}" for k, (a, b) in sorted(diffs.items())]
        msg = (
            f"Refusing to resume from checkpoint{where}: it was written by another configuration "
            f"({len(diffs)} differing key(s)):\n" + "\n".join(lines)
        )
        msg += "\n" + (
            hint
            or "Use another output directory (paths.output_dir / hydra.run.dir) or "
            "delete the old checkpoints to start afresh."
        )
        super().__init__(msg, diffs, path, hint)
        self.differences, self.path = diffs, (os.fspath(path) if path is not None else None)


class NonFiniteLossError(SpelabError, RuntimeError):
    """The training loss became NaN or infinite at `step` (the global step of the bad batch)."""

    def __init__(self, step: int, value: float, hint: str | None = None) -> None:
        msg = f"Non-finite training loss {value} at step {step}; training stopped. The last good checkpoint was kept"
        msg += f". {hint}" if hint else " (lower the learning rate, enable gradient clipping, or check the data)."
        super().__init__(msg, step, value, hint)
        self.step, self.value = step, value


class OutputDirError(SpelabError, OSError):
    """The output directory cannot be created or written (permissions, read-only fs, full disk)."""

    def __init__(self, path: str | os.PathLike, problem: str, hint: str | None = None) -> None:
        msg = f"Cannot write to output directory {os.fspath(path)}: {problem}"
        msg += f". {hint}" if hint else ". Choose a writable directory with paths.log_dir=... or free space."
        super().__init__(msg, path, problem, hint)
        self.path, self.problem = os.fspath(path), problem

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs; keep our message
        return self.args[0]


class SkippedRecords:
    """Counts skippable bad records of one file, so a reader can report them once.

    skipped = SkippedRecords(path)
    skipped.add(line, "empty row")                # per bad record
    skipped.check(total=n_rows, max_fraction=0.1)  # raises DataError if too many were bad
    log.warning(skipped.summary())                 # "... skipped 3 of 1000 records: empty row x3 (lines 4, 9, 12)"
    """

    def __init__(self, path: str | os.PathLike, max_examples: int = 5) -> None:
        self.path = os.fspath(path)
        self.reasons: Counter[str] = Counter()
        self.lines: list[int | None] = []
        self.max_examples = max_examples

    def add(self, line: int | None, reason: str) -> None:
        self.reasons[reason] += 1
        self.lines.append(line)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def summary(self, total: int | None = None) -> str:
        if not self.count:
            return f"{self.path}: no records skipped"
        of = f" of {total}" if total is not None else ""
        reasons = ", ".join(f"{r} x{n}" for r, n in self.reasons.most_common())
        shown = [str(x) for x in self.lines[: self.max_examples] if x is not None]
        at = f" (lines {', '.join(shown)}{', ...' if len(self.lines) > len(shown) else ''})" if shown else ""
        return f"{self.path}: skipped {self.count}{of} records: {reasons}{at}"

    def check(self, total: int, max_fraction: float = 1.0) -> None:
        """Raise DataError when no record is usable or more than `max_fraction` of them were skipped."""
        if total <= 0 or self.count >= total:
            raise DataError(self.path, f"no usable records ({self.summary(total)})")
        if self.count / total > max_fraction:
            raise DataError(self.path, f"too many bad records, more than {max_fraction:.0%} ({self.summary(total)})")


def require_classes(
    path: str | os.PathLike, labels: Iterable[int], min_classes: int = 2, expected: Sequence[int] | None = None
) -> None:
    """Fail clearly on a classification split with fewer than `min_classes` distinct labels."""
    seen = sorted(set(int(x) for x in labels))
    if len(seen) < min_classes:
        raise DataError(
            path,
            f"only {len(seen)} distinct class(es) {seen} in the labels; a classification "
            f"dataset needs at least {min_classes}",
            hint="the file is truncated or is not this task's data",
        )
    if expected is not None:
        bad = [c for c in seen if c not in set(expected)]
        if bad:
            raise DataError(path, f"labels {bad} outside the allowed classes {list(expected)}")
