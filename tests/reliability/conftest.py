"""Fixtures for the reliability tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def trainer_kwargs():
    return dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
