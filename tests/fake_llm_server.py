"""A scriptable OpenAI-compatible chat server for tests (stdlib only, no network beyond 127.0.0.1).

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` closely enough for the real
``openai`` client's ``chat.completions.parse`` and ``chat.completions.create``. Each request
consumes one scripted :class:`Behaviour` from a queue; when the queue is empty the ``responder``
callable (if any) computes the answer from the request body, so agent and graph tests can derive
answers from the prompt. Every request body is recorded in :attr:`FakeLLMServer.requests`.

Example:
    >>> with FakeLLMServer() as server:                      # doctest: +SKIP
    ...     server.enqueue(fenced({"x": 1}), http_error(500), reply({"x": 2}))
    ...     llm = OpenAICompatibleLLM("fake", base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from pydantic import BaseModel

Content = str | dict | list | BaseModel
Responder = Callable[[dict], "Content | Behaviour"]


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one request.

    Attributes:
        kind: ``"reply"`` (200 with ``content`` as the assistant message) or ``"status"`` (an
            HTTP error with ``status`` and ``message`` in the OpenAI error shape).
        content: assistant message text for ``"reply"``.
        status: HTTP status for ``"status"``.
        message: error message for ``"status"``.
        delay_s: seconds to wait before answering (the wait ends early when the server stops).
        finish_reason: ``choices[0].finish_reason`` for ``"reply"``.
        refusal: ``choices[0].message.refusal`` (then ``content`` is None), as OpenAI sends when
            a model declines.
    """

    kind: Literal["reply", "status"]
    content: str | None = ""
    status: int = 200
    message: str = ""
    delay_s: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None


def _to_text(content: Content) -> str:
    if isinstance(content, BaseModel):
        return content.model_dump_json()
    if isinstance(content, dict | list):
        return json.dumps(content)
    return content


def reply(content: Content, *, finish_reason: str = "stop") -> Behaviour:
    """Answer with ``content``: a string as is, a dict/list/pydantic object as compact JSON."""
    return Behaviour("reply", content=_to_text(content), finish_reason=finish_reason)


def fenced(content: Content, *, language: str = "json") -> Behaviour:
    """Answer with the JSON inside a Markdown code fence and a line of prose around it."""
    body = json.dumps(json.loads(_to_text(content)), indent=2)
    return reply(f"Here is the answer:\n```{language}\n{body}\n```\nHope this helps.")


def think(content: Content, *, thought: str = "Let me reason about {braces} first.") -> Behaviour:
    """Answer like a reasoning model: a ``<think>...</think>`` block, then the JSON."""
    return reply(f"<think>\n{thought}\n</think>\n{_to_text(content)}")


def refusal(text: str = "I can't help with that.") -> Behaviour:
    """Decline like OpenAI's structured outputs: ``content`` null, ``refusal`` set."""
    return Behaviour("reply", content=None, refusal=text)


def invalid_json(text: str = '{"answer": oops, not json') -> Behaviour:
    """Answer with text that holds no valid JSON object."""
    return reply(text)


def http_error(status: int, message: str = "") -> Behaviour:
    """Answer with HTTP ``status`` and an OpenAI-shaped error body."""
    return Behaviour("status", status=status, message=message or f"fake server error {status}")


def server_error() -> Behaviour:
    """HTTP 500."""
    return http_error(500, "internal server error (scripted)")


def rate_limited() -> Behaviour:
    """HTTP 429."""
    return http_error(429, "rate limit reached (scripted)")


def delayed(seconds: float, then: Behaviour | Content = "") -> Behaviour:
    """Wait ``seconds``, then do ``then`` (a behaviour, or content to reply with)."""
    base = then if isinstance(then, Behaviour) else reply(then)
    return replace(base, delay_s=float(seconds))


class FakeLLMServer:
    """OpenAI-compatible HTTP server on ``127.0.0.1`` with a free port, served from a thread.

    Args:
        responder: computes the answer when the queue is empty, from the request body (a dict
            with ``model``, ``messages``, maybe ``response_format``); returns content or a
            :class:`Behaviour`. Without it an empty queue gives HTTP 400 (never retried), so a
            test that sends more requests than it scripted fails loudly.
        model: the id listed by ``GET /v1/models``.

    Attributes:
        requests: every ``POST /v1/chat/completions`` body received, in order.
        base_url: ``http://127.0.0.1:<port>/v1``, set once started.
    """

    def __init__(self, responder: Responder | None = None, *, model: str = "fake-model"):
        self.responder = responder
        self.model = model
        self.requests: list[dict] = []
        self.base_url = ""
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting -----------------------------------------------------------------------
    def enqueue(self, *behaviours: Behaviour | Content) -> FakeLLMServer:
        """Append behaviours (content is shorthand for :func:`reply`) to the queue."""
        with self._lock:
            for b in behaviours:
                self._queue.append(b if isinstance(b, Behaviour) else reply(b))
        return self

    @property
    def pending(self) -> int:
        """Scripted behaviours not consumed yet."""
        with self._lock:
            return len(self._queue)

    def _next_behaviour(self, body: dict) -> Behaviour:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return http_error(400, "fake server: no scripted behaviour left and no responder")
        out = self.responder(body)
        return out if isinstance(out, Behaviour) else reply(out)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        """Bind a free port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers still waiting are cut short."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- response shapes -----------------------------------------------------------------
    def completion(self, body: dict, b: Behaviour) -> dict:
        """The chat-completion JSON for a ``"reply"`` behaviour (token counts: chars / 4)."""
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(b.content or "") // 4 + 1
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": b.content, "refusal": b.refusal},
                    "logprobs": None,
                    "finish_reason": b.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer  # set on the subclass built in FakeLLMServer.start

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired while we were delaying)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.fake.model, "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, _error_body(f"no route GET {self.path}", 404))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(f"no route POST {self.path}", 404))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, _error_body("request body is not JSON", 400))
            return
        b = self.fake._next_behaviour(body)
        if b.delay_s > 0 and self.fake._stopping.wait(b.delay_s):
            return  # server stopping: drop the connection without answering
        if b.kind == "status":
            self._send_json(b.status, _error_body(b.message, b.status))
        else:
            self._send_json(200, self.fake.completion(body, b))


def _error_body(message: str, status: int) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
