"""A local HTTP receiver for Alertmanager notifications in tests.

``with WebhookReceiver() as hook:`` serves on 127.0.0.1 (a free port) in a
thread and records every request: ``hook.url("/slack")`` builds a URL to point
a receiver at, ``hook.requests(path_prefix)`` returns what arrived and
``hook.wait_for(predicate, timeout)`` waits for a matching request. Answers
200 with ``ok`` (Slack's incoming-webhook answer, and fine for the others).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                request = Request("POST", parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._arrived:
                    receiver._requests.append(request)
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="webhook-receiver")

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def requests(self, path_prefix: str = "/") -> list[Request]:
        with self._lock:
            return [r for r in self._requests if r.path.startswith(path_prefix)]

    def wait_for(self, predicate: Callable[[Request], bool], timeout: float = 20.0) -> Request:
        """The first request matching ``predicate``; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for request in self._requests:
                    if predicate(request):
                        return request
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.path, r.body[:200]) for r in self._requests]
                    raise AssertionError(f"no matching request within {timeout}s; got {seen}")
                self._arrived.wait(left)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
