"""Reliability pieces train.py plugs in: atomic checkpoints, NaN/inf guard, output-dir checks, run
metadata and checkpoint/config compatibility. Each module is standalone and unit-tested."""

from spelab.reliability.checkpoint_io import AtomicCheckpointIO, atomic_torch_save, remove_stale_temp_files
from spelab.reliability.ckpt_compat import ConfigStamp, check_checkpoint_compatible, config_differences
from spelab.reliability.finite_guard import FiniteLossGuard
from spelab.reliability.output_dir import check_output_dir, disk_errors_as_output_dir_errors
from spelab.reliability.run_metadata import save_run_metadata, wandb_metadata

__all__ = [
    "AtomicCheckpointIO",
    "atomic_torch_save",
    "remove_stale_temp_files",
    "ConfigStamp",
    "check_checkpoint_compatible",
    "config_differences",
    "FiniteLossGuard",
    "check_output_dir",
    "disk_errors_as_output_dir_errors",
    "save_run_metadata",
    "wandb_metadata",
]
