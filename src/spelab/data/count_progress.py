"""A log line every few seconds for long data preparation (tokenising, generating), so a first run
that works for minutes says how far it is. Plain logging: works on a terminal and in a log file."""

from __future__ import annotations

import logging
import time


class CountProgress:
    """progress = CountProgress(349, "tokenising music21 pieces", log); progress.update() per item.
    Logs `tokenising music21 pieces: 120/349 (34%), 2.1/s, ETA 1m49s` at most every `every_s` seconds."""

    def __init__(self, total: int, what: str, log: logging.Logger, every_s: float = 10.0) -> None:
        self.total, self.what, self.log, self.every_s = total, what, log, every_s
        self.done = 0
        self.t0 = self.last = time.monotonic()
        log.info("%s: %d to do (cached afterwards)", what, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            self.log.info(
                "%s: %d/%d (%.0f%%), %.1f/s, ETA %dm%02ds",
                self.what,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                eta // 60,
                eta % 60,
            )
