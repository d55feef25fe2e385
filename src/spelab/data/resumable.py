"""A DataLoader whose position inside an epoch survives a checkpoint and a restart.

Lightning restores weights, optimizer, schedulers and loop counters, but not the position inside the
epoch: a plain DataLoader restarts the epoch from its first batch (and a shuffling generator from its
seed), so a mid-epoch resume sees other data. `ResumableDataLoader` has Lightning's
`state_dict`/`load_state_dict` protocol: it saves its shuffling generator's state at the start of the
epoch and how many batches the loop has taken, and on resume replays the same permutation, skipping the
batches already trained on (only indices are skipped, no data is loaded).

It lives in `data/` because the DataModules build it; the RNG half of exact resumption is
`spelab.reliability.resume_state.RngStateCallback`.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

# Lightning's training fetcher reads ahead only when the loader has no length
# (`_PrefetchDataFetcher.__iter__`: "ignore pre-fetching" for sized loaders); ours always has one, so
# when a checkpoint is written the loader has served exactly the batches the loop has used.
LIGHTNING_PREFETCH = 0


class _SkipFirst:
    """An index (batch) sampler that drops its first `skip` items on the next iteration only."""

    def __init__(self, base: Any, skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.base)
        for _ in range(self.skip):
            next(it, None)
        yield from it

    def __len__(self) -> int:
        return len(self.base)


class _Counted:
    def __init__(self, it: Any, owner: "ResumableDataLoader") -> None:
        self.it, self.owner = it, owner

    def __iter__(self) -> "_Counted":
        return self

    def __next__(self) -> Any:
        item = next(self.it)
        self.owner._served += 1
        return item

    def __len__(self) -> int:
        return len(self.it)

    def __getattr__(self, name: str) -> Any:  # _shutdown_workers etc. of the wrapped iterator
        return getattr(self.it, name)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside an epoch survives a checkpoint/restart (Lightning `_Stateful`).

    Use it exactly like DataLoader; give it a `generator` when shuffling (one is created from the
    global seed otherwise), so the permutation is reproducible. The constructor is DataLoader's.
    """

    _served = 0
    _skip_next = 0
    _restore_generator: torch.Tensor | None = None
    _epoch_start_state: torch.Tensor | None = None
    _in_iter = False

    @property
    def _index_sampler(self):  # type: ignore[override]
        base = super()._index_sampler
        if self._in_iter and self._skip_next:
            return _SkipFirst(base, self._skip_next)
        return base

    def _own_generator(self) -> torch.Generator:
        if self.generator is None:  # only reachable when no generator was given
            object.__setattr__(self, "generator", torch.Generator().manual_seed(torch.initial_seed() % 2**63))
        return self.generator

    def __iter__(self):  # type: ignore[override]
        gen = self._own_generator()
        if self._restore_generator is not None:
            gen.set_state(self._restore_generator)
            self._restore_generator = None
        self._epoch_start_state = gen.get_state().clone()
        self._served = self._skip_next
        self._in_iter = True
        try:
            it = super().__iter__()
        finally:
            self._in_iter = False
            self._skip_next = 0
        return _Counted(it, self)

    # Lightning calls these when saving / before iterating after a restore
    def state_dict(self) -> dict[str, Any]:
        gen = self._own_generator()
        length = len(self)
        consumed = min(max(self._served - LIGHTNING_PREFETCH, 0), length)
        return {
            "epoch_start_generator": self._epoch_start_state,
            "current_generator": gen.get_state().clone(),
            "consumed": consumed,
            "length": length,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state or state.get("epoch_start_generator") is None:
            return
        if state["consumed"] >= state["length"]:  # saved at the end of an epoch: the next one starts fresh
            self._restore_generator, self._skip_next = state["current_generator"], 0
        else:
            self._restore_generator, self._skip_next = state["epoch_start_generator"], int(state["consumed"])

    def __setattr__(self, name: str, value: Any) -> None:
        # DataLoader forbids setting some attributes after __init__; ours are plain bookkeeping
        if name in ("_served", "_skip_next", "_restore_generator", "_epoch_start_state", "_in_iter"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
