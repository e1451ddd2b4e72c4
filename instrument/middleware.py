"""HttpMetricsMiddleware: pure-ASGI HTTP and WebSocket metrics with correlation IDs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from promkit.instrument import correlation as _correlation
from promkit.instrument import tracing as _tracing
from promkit.instrument._access_line import RequestLine, access_logger
from promkit.instrument._children import InProgressTokens
from promkit.instrument._compat import otel_current_context
from promkit.instrument._exemplars import ExemplarLabels
from promkit.instrument._json_line import trace_piece
from promkit.instrument._log_output import output_state as _log_output
from promkit.instrument._recorders import http_request_recorder
from promkit.instrument._routes import RouteTemplates, find_router, route_path
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = ["OTHER_METHOD", "UNMATCHED_ROUTE", "HttpMetricsMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED_ROUTE = "__unmatched__"
"""``http_route`` of requests no route matched (404s, slash redirects): raw paths never become
labels."""
OTHER_METHOD = "_OTHER"
"""``http_request_method`` of methods outside the known set (OpenTelemetry's value)."""

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
DEFAULT_EXCLUDED_PATHS = ("/metrics", "/health", "/healthz", "/livez", "/readyz")

_STATUS_CLASS = {i: f"{i}xx" for i in range(1, 6)}
_TEMPLATE_CACHE_LIMIT = 10_000


def _status_class(status: int) -> str:
    return _STATUS_CLASS.get(status // 100, "unknown")


class HttpMetricsMiddleware:
    """Record HTTP and WebSocket metrics from the catalog; bind a correlation ID.

    Add it with ``app.add_middleware(HttpMetricsMiddleware)`` (Starlette or
    FastAPI). Requests are labelled by method, route *template* (the full
    template the app declared, e.g. ``/api/v1/items/{item_id}``: mount and
    include prefixes in, the root path out) and status code; unknown methods
    become ``_OTHER`` and unmatched paths ``__unmatched__``. Paths in
    ``exclude_paths`` (and below them, compared without the root path) pass
    through untouched.

    The correlation ID comes from the ``X-Correlation-ID`` (or
    ``X-Request-ID``) header when it is a valid UUID (with dashes or as 32 hex
    digits, kept as given), else a new random UUID4; it is bound in
    :data:`promkit.instrument.correlation.correlation_id_var` for the request
    (and for the app's 500 handler when an exception escapes) and returned in
    the header it came in. Histograms get it as an exemplar.

    Body-size histograms are opt-in (``record_sizes=True``): OpenTelemetry
    keeps them in development, and out of the box the middleware should cost
    little more than a hand-written one (they add ~5% to its per-request
    instructions, ``python -m benchmarks.instructions``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: MetricsRegistry | None = None,
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        correlation: bool = True,
        correlation_header: str = _correlation.CORRELATION_HEADER,
        accept_request_id: bool = True,
        echo_correlation_id: bool = True,
        record_sizes: bool = False,
        track_in_flight: bool = True,
        exemplars: bool = True,
        tracing: bool = True,
        log_requests: bool = True,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        reg = self.registry
        self._duration = reg.histogram("http_server_request_duration_seconds")
        self._active = reg.gauge("http_server_active_requests")
        self._request_size = reg.histogram("http_server_request_body_size_bytes")
        self._response_size = reg.histogram("http_server_response_body_size_bytes")
        self._exceptions = reg.counter("http_server_unhandled_exceptions_total")
        self._disconnects = reg.counter("http_server_client_disconnects_total")
        self._ws_active = reg.gauge("websocket_server_active_connections")
        self._ws_messages = reg.counter("websocket_server_messages_total")
        self._ws_duration = reg.histogram("websocket_server_session_duration_seconds")
        self._ws_closes = reg.counter("websocket_server_closes_total")

        excluded = tuple(p.rstrip("/") or "/" for p in exclude_paths)
        for path in excluded:
            if not path.startswith("/"):
                raise ValueError(f"exclude_paths entries must start with '/', got {path!r}")
        self._excluded_exact = frozenset(excluded)
        self._excluded_prefixes = tuple(p + "/" for p in excluded if p != "/")
        self._correlation = correlation
        header = correlation_header.strip()
        if not header or any(c in header for c in " :\r\n"):
            raise ValueError(
                f"correlation_header {correlation_header!r} is not a valid header name"
            )
        self._header_raw = header.lower().encode("latin-1")
        self._request_id_raw = b"x-request-id" if accept_request_id else None
        self._wanted_headers = frozenset(
            h for h in (b"content-length", self._header_raw, self._request_id_raw) if h)
        self._response_header = header.encode("latin-1") if echo_correlation_id else None
        # An ID that came in X-Request-ID is answered in X-Request-ID: the neighbour reads
        # its own header.
        self._request_id_header = (_correlation.REQUEST_ID_HEADER.encode("latin-1")
                                   if echo_correlation_id else None)
        self._record_sizes = record_sizes
        self._track_in_flight = track_in_flight
        self._exemplars = exemplars
        self._tracing = tracing
        self._access_log = access_logger(reg.failures)
        self._log_requests = log_requests
        self._scan_headers = correlation or record_sizes
        # (method, template, status) -> (record(seconds, exemplar[, request_bytes,
        # response_bytes]) of the request's series, log line or None)
        self._children: dict[tuple[str, str, int], tuple[
            Callable[..., None], RequestLine | None]] = {}
        self._active_tokens: dict[str, InProgressTokens] = {}
        # The router below this middleware, indexed on first use; route object -> template.
        self._routes = RouteTemplates(find_router(app), UNMATCHED_ROUTE)
        self._route_labels = self._routes.by_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Up to the app's call the HTTP path is inline: the same steps as methods (reading
        # the headers, binding the ID, the exemplar, the exclusion) cost +3.8k instructions
        # per request, +12% (promkit_defaults, python -m benchmarks.instructions).
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path = scope["path"]
        root_path = scope.get("root_path")
        if root_path:  # behind a proxy's prefix (uvicorn --root-path): compare without it
            path = route_path(path, root_path)
        if path in self._excluded_exact or path.startswith(self._excluded_prefixes):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        request_size = -1  # unknown until a Content-Length says otherwise
        token = None
        cid = ""
        cid_header: tuple[bytes, bytes] | None = None
        if self._scan_headers:
            incoming: bytes | None = None  # the correlation header's value
            request_id: bytes | None = None  # X-Request-ID's
            wanted, header_raw = self._wanted_headers, self._header_raw
            for key, value in scope["headers"]:
                if key in wanted:  # one set lookup for the headers that matter to nobody
                    if key == b"content-length":
                        # 18 digits: a client's absurd Content-Length must not overflow the sum.
                        request_size = int(value) if value.isdigit() and len(value) <= 18 else -1
                    elif key == header_raw:
                        incoming = value
                    else:
                        request_id = value
            if self._correlation:
                valid_id = _correlation.valid_correlation_id
                answer = self._response_header
                found = valid_id(incoming) if incoming is not None else None
                if found is None and request_id is not None:
                    found = valid_id(request_id)
                    if found is not None or incoming is None:
                        answer = self._request_id_header
                # The one rule (correlation.resolve_correlation_id) on the raw headers: the
                # header, then X-Request-ID, else the ID already bound, else a new one.
                # Setting the contextvar binds structlog's context too (it is structlog's).
                cid = found or _correlation.bound_or_new()
                token = _correlation.correlation_id_var.set(cid)
                if answer is not None:
                    cid_header = (answer, cid.encode())
        active = None
        if self._track_in_flight:
            active = self._active_tokens.get(method)
            if active is None:
                active = self._active_tokens[method] = self._active.labels(
                    method).in_progress_tokens()
            active.append(None)  # +1 in flight, lock-free
        exemplar: ExemplarLabels | None = None
        # An empty OpenTelemetry context has no span to link or annotate: one C call
        # rather than tracing_active()'s two Python calls (-0.6k instructions per request,
        # promkit_defaults, python -m benchmarks.instructions).
        traced = self._tracing and otel_current_context()
        trace_ids: tuple[str, str] | None = None
        if traced:
            # One read of the current span (an outer OpenTelemetry ASGI middleware's server
            # span) for three steps: the span gets the ID; the exemplar is its
            # trace_id/span_id when tracing is active, else the correlation ID; the log line
            # gets its IDs.
            labels, trace_ids = _tracing.traced_request(traced, cid or None,
                                                        self.registry.failures)
            if self._exemplars:
                exemplar = labels
        elif self._exemplars and cid:
            exemplar = cid  # stands for {"correlation_id": cid}, built at scrape time
        status = 0
        response_size = 0
        finished = 0.0
        start = perf_counter()

        # A plain function returning the server's awaitable, not a coroutine of
        # its own: no extra coroutine per message. Timing is unchanged, since
        # ``finished`` was always taken before handing the message on.
        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal status, response_size, finished
            if message["type"] == "http.response.body":
                body = message.get("body")
                if body:
                    response_size += len(body)
                if not message.get("more_body"):
                    finished = perf_counter()
            elif message["type"] == "http.response.start":
                status = message["status"]
                if cid_header is not None:
                    message["headers"] = [*message.get("headers", ()), cid_header]
            return send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            end = finished or perf_counter()
            # Recording is inline too: as a method it costs +1.1k instructions per request
            # (+3.7%, promkit_defaults, python -m benchmarks.instructions).
            try:
                # The router leaves the matched route in the scope (Starlette 1.7+): its
                # full template is cached per route object. Otherwise, or behind a Mount
                # whose router did not say, RouteTemplates finds it.
                template = self._route_labels.get(id(scope.get("route")))
                if template is None:
                    template = self._routes.template(scope, path)
                if failure is not None:
                    if status == 0:
                        status = 500  # the server answers an escaped exception with a 500
                    self._exceptions.labels(method, template, type(failure).__name__).inc()
                elif not finished and status:
                    # The response started but its body never finished: the client left.
                    self._disconnects.labels(method, template).inc()
                children = self._children.get((method, template, status))
                if children is None:
                    children = self._new_children((method, template, status))
                duration = end - start
                # Duration (with the exemplar, when any), and sizes when recorded (the
                # request's only when known, like OpenTelemetry): one call, one lock.
                if self._record_sizes:
                    children[0](duration, exemplar, request_size, response_size)
                else:
                    children[0](duration, exemplar)
                log_state = _log_output
                # The request log line, unless nothing is configured: read inline, not via
                # log_output() (-1.7k instructions per request, benchmarks.instructions).
                if children[1] is not None and (log_state.mode or end >= log_state.until):
                    # The span read above, while its context is still current (the app
                    # could leave another attached); else the line reads the context.
                    trace_part = (trace_piece(trace_ids) if traced
                                  and traced is otel_current_context() else None)
                    if cid:  # validated or generated: hex digits and dashes, nothing to escape
                        self._access_log.log_line(children[1], duration, cid, True, trace_part)
                    else:
                        self._access_log.log_line(children[1], duration,
                                                  _correlation.get_correlation_id(), False,
                                                  trace_part)
            except Exception as exc:  # recording must never break the response
                self.registry.failures.failure("http_middleware", exc)
            if active is not None:
                active.pop()
            # An exception that escapes is answered outside this middleware, by the app's
            # 500 handler (Starlette's ServerErrorMiddleware, FastAPI's
            # exception_handler(Exception)): the ID stays bound for it and its log lines.
            # The server's task for this request ends right after.
            if token is not None and failure is None:
                _correlation.correlation_id_var.reset(token)

    def _new_children(self, key: tuple[str, str, int]) -> tuple[
            Callable[..., None], RequestLine | None]:
        method, template, status = key
        status_text = str(status) if status else "0"
        duration = self._duration.labels(method, template, status_text, _status_class(status))
        line = self._access_log.line(*key) if self._log_requests else None
        if self._record_sizes:
            record = http_request_recorder(duration, self._request_size.labels(method, template),
                                           self._response_size.labels(method, template))
        else:
            record = duration.observe
        children = (record, line)
        if len(self._children) < _TEMPLATE_CACHE_LIMIT:
            self._children[key] = children
        return children

    # -------------------------------------------------------------------- WebSocket

    def _is_excluded(self, path: str) -> bool:
        return path in self._excluded_exact or path.startswith(self._excluded_prefixes)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope["path"], scope.get("root_path", ""))
        if self._is_excluded(path):
            await self.app(scope, receive, send)
            return
        template = UNMATCHED_ROUTE
        accepted = False
        close_code = ""
        received = 0
        sent = 0
        start = time.perf_counter()
        token = None
        if self._correlation:
            # The same headers as HTTP: the correlation header first, then X-Request-ID.
            incoming = request_id = None
            for key, value in scope.get("headers", ()):
                if key == self._header_raw:
                    incoming = value
                elif key == self._request_id_raw:
                    request_id = value
            valid_id = _correlation.valid_correlation_id
            cid = (valid_id(incoming) or valid_id(request_id)
                   or _correlation.bound_or_new())
            token = _correlation.correlation_id_var.set(cid)
            if self._tracing and _tracing.tracing_active():
                _tracing.annotate_current_span(cid, self.registry.failures)

        async def receive_wrapper() -> Message:
            nonlocal received, close_code
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                received += 1
            elif kind == "websocket.disconnect" and not close_code:
                close_code = str(message.get("code", 1005))
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal accepted, sent, close_code, template
            kind = message["type"]
            if kind == "websocket.send":
                sent += 1
            elif kind == "websocket.accept" and not accepted:
                accepted = True
                try:
                    template = self._routes.template(scope, path)
                    self._ws_active.labels(template).inc()
                except Exception as exc:  # recording must never break the session
                    self.registry.failures.failure("websocket_middleware", exc)
            elif kind == "websocket.close" and not close_code:
                close_code = str(message.get("code", 1000))
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            try:
                if accepted:
                    self._ws_active.labels(template).dec()
                    self._ws_duration.labels(template).observe(time.perf_counter() - start)
                else:
                    template = self._routes.template(scope, path)
                self._ws_messages.labels(template, "receive").inc(received)
                self._ws_messages.labels(template, "transmit").inc(sent)
                self._ws_closes.labels(template, close_code or "1006").inc()
            except Exception as exc:
                self.registry.failures.failure("websocket_middleware", exc)
            if token is not None:
                _correlation.correlation_id_var.reset(token)
