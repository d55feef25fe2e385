"""LRA Path-X: Pathfinder at 128x128 (16384 pixel tokens); opt-in because of its cost."""

from __future__ import annotations

from spelab.data.lra.pathfinder import PathfinderDataModule


class PathXDataModule(PathfinderDataModule):
    task_name = "Path-X"
    default_resolution = 128
