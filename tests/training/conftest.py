"""Fixtures for the training tests: an isolated runs directory and tiny configs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """Every run and the registry go under a temporary folder."""
    path = tmp_path / "runs"
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(path))
    return path


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Tiny models: one intra-op thread avoids spin-waiting on a loaded 2-core CI box."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
