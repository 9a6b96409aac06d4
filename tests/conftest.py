"""Shared test setup: offline hub, quick scale, the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _no_fast_dev_run(monkeypatch):
    """Tests run real loops; a test of the fast dev run sets GPTBOOK_FAST_DEV_RUN itself."""
    monkeypatch.delenv("GPTBOOK_FAST_DEV_RUN", raising=False)
