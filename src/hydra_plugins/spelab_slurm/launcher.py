"""hydra-submitit-launcher's SlurmLauncher, checked before submitting and split into arrays that fit.

conf/hydra/launcher/slurm.yaml points `_target_` here (Hydra accepts launchers only from the
hydra_plugins namespace, hence this package). Before anything is submitted the cluster is
asked (slurm_precheck.py) whether the partition exists, has the GPUs asked for, and how large an array
it accepts; a mismatch ends the command with one line naming the key to change. A grid larger than
`MaxArraySize` is submitted as several arrays at once (one thread per array waits for its results), and
the results come back in grid order.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher

from spelab.slurm_precheck import SlurmPrecheckError, check_cluster

log = logging.getLogger(__name__)


class SlurmLauncher(_SubmititSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        try:
            limit = check_cluster(self.params)
        except SlurmPrecheckError as err:
            print(f"Error: {err}", file=sys.stderr)
            sys.exit(1)
        n = len(job_overrides)
        if limit is None or n <= limit:
            return super().launch(job_overrides, initial_job_idx)
        chunks = [(list(job_overrides[i : i + limit]), initial_job_idx + i) for i in range(0, n, limit)]
        print(
            f"[spelab] {n} cells exceed the cluster's MaxArraySize ({limit}): submitting {len(chunks)} arrays",
            flush=True,
        )
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            parts = list(pool.map(lambda c: super(SlurmLauncher, self).launch(*c), chunks))
        return [ret for part in parts for ret in part]
