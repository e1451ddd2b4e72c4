"""What a new user does first, run with an installed promkit wheel in an empty directory.

tests/integration/test_wheel.py runs this file with the wheel's own venv and
reads the JSON line it prints: the public API imports without the command's
dependencies, a plain ASGI app served through the middleware is counted, and
its /metrics read over HTTP shows the request.
"""

import asyncio
import json
import sys
import urllib.request
from typing import Any

import promkit
from promkit import (
    HttpMetricsMiddleware,
    MetricsRegistry,
    configure_logging,
    get_correlation_id,
    metrics_app,
    stage_timer,
    start_metrics_server,
)

# The command's dependencies (and Starlette, no dependency at all) load only when used.
loaded_on_import = sorted(name for name in ("yaml", "httpx", "starlette", "promkit.tools")
                          if name in sys.modules)

registry = MetricsRegistry()


@stage_timer("hello", registry=registry)
def greeting() -> bytes:
    return f"hello {get_correlation_id()}".encode()


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": greeting()})


app = HttpMetricsMiddleware(hello, registry=registry)


async def get(asgi: Any, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"localhost")],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}
    await asgi(scope, receive, send)
    return sent


async def main() -> dict[str, Any]:
    answers = [await get(app, "/hello") for _ in range(3)]
    in_app = await get(metrics_app(registry), "/metrics")
    with start_metrics_server(0, registry=registry) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            over_http = response.read().decode()
    return {
        "promkit_file": promkit.__file__,
        "version": promkit.__version__,
        "loaded_on_import": loaded_on_import,
        "statuses": [a[0]["status"] for a in answers],
        "bodies": [a[1]["body"].decode() for a in answers],
        "metrics_app_status": in_app[0]["status"],
        "metrics_app_body": in_app[1]["body"].decode(),
        "metrics_over_http": over_http,
    }


if __name__ == "__main__":
    configure_logging  # noqa: B018 - part of the API a user imports first
    print(json.dumps(asyncio.run(main())))
