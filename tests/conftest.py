"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from tests.fake_llm_server import FakeLLMServer


@pytest.fixture
def llm_server():
    """A scriptable OpenAI-compatible server on 127.0.0.1 (see tests/fake_llm_server.py)."""
    with FakeLLMServer() as server:
        yield server
