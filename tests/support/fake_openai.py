"""A local fake OpenAI-compatible chat completions server for tests and benchmarks.

litellm's real client code (the ``openai`` SDK over httpx) talks to it, so tests exercise the
same request building, response parsing and error mapping as production, with no internet.

Usage::

    with FakeOpenAI() as srv:
        srv.script(status(429, headers={"Retry-After": "7"}), reply("positive"))
        ...  # call litellm with api_base=srv.base_url, model="openai/fake-model"
        assert srv.requests[0].headers["authorization"] == "Bearer test-key"

Scripted behaviours are consumed one per request, in order; once the script is empty every
request gets ``default_reply(request_json)``. Every request is recorded, whatever the answer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "Behaviour",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "Status",
    "delay",
    "reply",
    "reply_json",
    "status",
]

DefaultReply = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Reply:
    """Answer with a chat completion whose message content is ``text``."""

    text: str
    delay_seconds: float = 0.0
    finish_reason: str = "stop"
    usage: Mapping[str, int] | None = None
    """Override ``prompt_tokens`` / ``completion_tokens``; by default words are counted."""


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error status, a JSON (or raw string) body and extra headers."""

    code: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class _Delay:
    """Wait, then answer as ``then`` (or the default reply when ``then`` is None)."""

    seconds: float
    then: Reply | Status | None = None


Behaviour = Reply | Status | _Delay


def reply(
    text: str,
    *,
    finish_reason: str = "stop",
    usage: Mapping[str, int] | None = None,
) -> Reply:
    """Script one successful completion with ``text`` as the assistant's message."""
    return Reply(text=text, finish_reason=finish_reason, usage=usage)


def reply_json(
    value: Any,
    *,
    finish_reason: str = "stop",
    usage: Mapping[str, int] | None = None,
) -> Reply:
    """Script one completion whose message is ``value`` written as JSON (a structured answer)."""
    return Reply(text=json.dumps(value), finish_reason=finish_reason, usage=usage)


def status(code: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Status:
    """Script one HTTP error, e.g. ``status(429, headers={"Retry-After": "3"})``.

    Without ``body`` an OpenAI-style error object is sent, so the client parses it as it would
    a real provider's error.
    """
    return Status(code=code, body=body, headers=dict(headers or {}))


def delay(seconds: float, then: Reply | Status | None = None) -> _Delay:
    """Script a slow answer: sleep ``seconds`` before answering (use it to provoke timeouts)."""
    return _Delay(seconds=seconds, then=then)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body (or the raw text when it was not JSON)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completions request (empty for anything else)."""
        if isinstance(self.body, dict):
            return list(self.body.get("messages") or [])
        return []

    @property
    def response_format(self) -> Any:
        """The request's ``response_format`` (None when it sent none)."""
        return self.body.get("response_format") if isinstance(self.body, dict) else None

    def message_text(self, role: str) -> str:
        """All message contents with ``role`` joined by newlines (``"system"``, ``"user"``…)."""
        parts: list[str] = []
        for message in self.messages:
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return "\n".join(parts)


def _echo_last_user_message(request_json: dict[str, Any]) -> str:
    messages = request_json.get("messages") or []
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    return f"echo: {users[-1]}" if users else "echo"


def _count_words(value: Any) -> int:
    return max(1, len(json.dumps(value).split()))


class FakeOpenAI:
    """A fake OpenAI-compatible server on 127.0.0.1 (free port), serving in a background thread.

    Args:
        default_reply: builds the assistant text from the request JSON when nothing is scripted;
            by default it echoes the last user message.
    """

    def __init__(self, default_reply: DefaultReply | None = None) -> None:
        self.default_reply: DefaultReply = default_reply or _echo_last_user_message
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        """Bind a free port and start serving; prefer the context manager."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True  # a delayed reply must not hold up shutdown
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test API

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running; use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The ``api_base`` to give litellm / the OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours; each answers one request, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def clear(self) -> None:
        """Forget scripted behaviours and recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("FakeOpenAI received no request")
            return self.requests[-1]

    # ------------------------------------------------------------------ serving

    def _record_and_next(self, request: RecordedRequest) -> Behaviour | None:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = handler.path.split("?", 1)[0]
        recorded = RecordedRequest(
            method=method,
            path=path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            self._send(handler, 404, {"error": {"message": f"no route {method} {path}"}})
            return
        behaviour = self._record_and_next(recorded)
        if isinstance(behaviour, _Delay):
            time.sleep(behaviour.seconds)
            behaviour = behaviour.then
        if isinstance(behaviour, Status):
            time.sleep(behaviour.delay_seconds)
            payload = behaviour.body
            if payload is None:
                payload = {
                    "error": {
                        "message": f"fake error {behaviour.code}",
                        "type": "fake_error",
                        "code": str(behaviour.code),
                    }
                }
            self._send(handler, behaviour.code, payload, behaviour.headers)
            return
        request_json = body if isinstance(body, dict) else {}
        if behaviour is None:
            behaviour = Reply(text=self.default_reply(request_json))
        time.sleep(behaviour.delay_seconds)
        self._send(handler, 200, self._completion(request_json, behaviour))

    @staticmethod
    def _completion(request_json: dict[str, Any], answer: Reply) -> dict[str, Any]:
        prompt_tokens = _count_words(request_json.get("messages"))
        completion_tokens = _count_words(answer.text)
        if answer.usage:
            prompt_tokens = answer.usage.get("prompt_tokens", prompt_tokens)
            completion_tokens = answer.usage.get("completion_tokens", completion_tokens)
        return {
            "id": f"chatcmpl-fake-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request_json.get("model", "fake-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        code: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during a scripted delay)
