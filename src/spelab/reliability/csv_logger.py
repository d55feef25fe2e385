"""A CSV logger that keeps one metrics file across a crash and a resume, as one continuous run.

Lightning's CSVLogger deletes an existing `metrics.csv` when it starts, so a run directory either
loses the rows before a restart (fixed version) or splits them over `version_<n>/` files with the
steps between the last checkpoint and the crash present twice (the platform's default,
`version: null`). `ContinuousCSVLogger` (with `version: ""`) keeps the file and, at the first flush
of a new process, drops the rows at or after the first step it logs — the steps the resumed run
computes again — so each step appears exactly once. The Trainer already flushes after every log call.
Optional: `conf/logger/csv.yaml` may use it as `_target_` with `version: ""`.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ContinuingExperimentWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._trimmed = False
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = list(header)

    def _check_log_dir_exists(self) -> None:  # keep the previous rows (Lightning deletes them here)
        pass

    def save(self) -> None:
        if not self._trimmed and self.metrics and os.path.isfile(self.metrics_file_path):
            steps = [int(m["step"]) for m in self.metrics if m.get("step") is not None]
            if steps:
                self._drop_rows_from(min(steps))
            self._trimmed = True
        super().save()

    def _drop_rows_from(self, first_step: int) -> None:
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") in (None, "") or int(float(r["step"])) < first_step]
        tmp = f"{self.metrics_file_path}.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)


class ContinuousCSVLogger(CSVLogger):
    """CSVLogger(save_dir, name, version, ...) that appends across restarts (see the module docstring)."""

    def __init__(self, *args: Any, flush_logs_every_n_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
