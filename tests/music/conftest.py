"""Fixtures for the music tests (helpers live in music_helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def music_cache(tmp_path_factory) -> Path:
    """One token cache for the session: the smoke subset is tokenised once (a few seconds)."""
    return tmp_path_factory.mktemp("music_cache")
