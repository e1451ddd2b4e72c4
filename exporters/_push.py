"""Push a registry to a Prometheus Pushgateway, for batch jobs that end before a scrape."""

from __future__ import annotations

import functools
import re
import urllib.error
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from prometheus_client import delete_from_gateway, push_to_gateway, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler

from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = ["PushError", "PushHandler", "PushMethod", "push_metrics"]

PushMethod = Literal["push", "pushadd", "delete"]
PushHandler = Callable[[str, str, float | None, list[tuple[str, str]], bytes],
                       Callable[[], None]]
"""prometheus-client's push handler: ``handler(url, method, timeout, headers, data)``
returns a function that sends the request (see ``exposition.default_handler``)."""

_METHODS: dict[str, str] = {"push": "PUT", "pushadd": "POST", "delete": "DELETE"}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_USERINFO = re.compile(r"//[^/@]*@")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Enough of the gateway's error body to say why it refused the push.
_ERROR_BODY_BYTES = 512


class PushError(Exception):
    """Pushing to (or deleting from) a Pushgateway failed; ``gateway`` says which one."""

    def __init__(self, message: str, *, gateway: str, job: str, method: str) -> None:
        super().__init__(message)
        self.gateway = gateway
        self.job = job
        self.method = method


def _check_gateway(gateway: object) -> str:
    if not isinstance(gateway, str) or not gateway.strip():
        raise ValueError(f"pushgateway URL must be a non-empty string, not {gateway!r}")
    # Messages show the URL with any user:password@ masked.
    shown = _USERINFO.sub("//***@", gateway)
    if _CONTROL.search(gateway):
        raise ValueError(f"pushgateway URL {shown!r} contains whitespace or control characters")
    # Like prometheus-client: a bare "host:port" means http.
    url = gateway if "://" in gateway else f"http://{gateway}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"pushgateway URL {shown!r} has scheme {parts.scheme!r}; use http:// or https://"
        )
    if not parts.hostname:
        raise ValueError(f"pushgateway URL {shown!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"pushgateway URL {shown!r} carries credentials; they are not "
            "sent from the URL: pass basic_auth=(username, password) instead"
        )
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ValueError(f"pushgateway URL {shown!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ValueError(f"pushgateway URL {shown!r} must not have a query or fragment")
    return url


def _check_job(job: object) -> str:
    if not isinstance(job, str) or not job:
        raise ValueError(f"job must be a non-empty string, not {job!r}")
    if _CONTROL.search(job.replace(" ", "")):
        raise ValueError(f"job {job!r} contains control characters")
    return job


def _check_grouping_key(grouping_key: Mapping[str, object] | None) -> dict[str, str]:
    if grouping_key is None:
        return {}
    if not isinstance(grouping_key, Mapping):
        raise ValueError(f"grouping_key must be a mapping of label names to values, "
                         f"not {type(grouping_key).__name__}")
    checked: dict[str, str] = {}
    for name, value in grouping_key.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise ValueError(f"grouping_key label name {name!r} is not a valid Prometheus "
                             "label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if name.startswith("__"):
            raise ValueError(f"grouping_key label name {name!r} is reserved (starts with '__')")
        if name == "job":
            raise ValueError("grouping_key must not contain 'job'; pass it as the job argument")
        checked[name] = str(value)
    return checked


def _check_auth(handler: object, basic_auth: object) -> Any:
    """The handler to pass to prometheus-client, or None for its default."""
    if handler is not None and basic_auth is not None:
        raise ValueError("give handler or basic_auth, not both (a handler of your own can "
                         "call prometheus_client.exposition.basic_auth_handler)")
    if handler is not None:
        if not callable(handler):
            raise ValueError(f"handler must be callable like prometheus_client.exposition."
                             f"default_handler, not {type(handler).__name__}")
        return handler
    if basic_auth is None:
        return None
    # Messages never show the credentials.
    if (not isinstance(basic_auth, (tuple, list)) or len(basic_auth) != 2
            or not all(isinstance(part, str) for part in basic_auth)):
        raise ValueError("basic_auth must be a (username, password) pair of strings")
    username, password = basic_auth
    if not username:
        raise ValueError("basic_auth username is empty")
    if ":" in username:
        raise ValueError("basic_auth username contains ':', which Basic authentication "
                         "cannot carry (RFC 7617)")
    if _CONTROL_CHARS.search(username) or _CONTROL_CHARS.search(password):
        raise ValueError("basic_auth username or password contains control characters")
    return functools.partial(basic_auth_handler, username=username, password=password)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            detail = exc.read(_ERROR_BODY_BYTES).decode("utf-8", "replace").strip()
        except Exception:
            detail = ""
        return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach it: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def push_metrics(gateway: str, job: str, registry: MetricsRegistry | None = None,
                 grouping_key: Mapping[str, object] | None = None, timeout: float | None = 5.0,
                 method: PushMethod = "push", *, handler: PushHandler | None = None,
                 basic_auth: tuple[str, str] | None = None, never_raise: bool = False) -> bool:
    """Send ``registry`` (None: the default registry) to the Pushgateway at ``gateway``.

    ``method``: ``"push"`` (PUT: replaces every metric of the group ``job`` +
    ``grouping_key``), ``"pushadd"`` (POST: replaces only the metrics pushed)
    or ``"delete"`` (DELETE: removes the group). ``gateway`` is a URL such as
    ``http://pushgateway:9091`` (a bare ``host:port`` means http).

    ``basic_auth=(username, password)`` sends HTTP Basic authentication
    (prometheus-client's ``basic_auth_handler``); ``handler`` is any handler
    prometheus-client's ``push_to_gateway`` accepts, with the signature of
    ``prometheus_client.exposition.default_handler`` (TLS client
    certificates: ``tls_auth_handler``; other headers: a handler of your own).

    Returns True on success. An invalid ``gateway``, ``job``, ``grouping_key``,
    ``timeout``, ``method``, ``handler`` or ``basic_auth`` raises ``ValueError``
    (even with ``never_raise``: it is a mistake in the code, not an outage). A failed request raises
    :class:`PushError` naming the gateway; with ``never_raise=True`` it is
    logged, counted in ``promkit_instrumentation_errors_total`` and False is
    returned instead.
    """
    url = _check_gateway(gateway)
    job = _check_job(job)
    key = _check_grouping_key(grouping_key)
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, not {method!r}")
    send = _check_auth(handler, basic_auth)
    extra: dict[str, Any] = {"handler": send} if send is not None else {}
    registry = registry if registry is not None else default_registry()
    try:
        if method == "push":
            push_to_gateway(url, job, registry.collector_registry, key, timeout, **extra)
        elif method == "pushadd":
            pushadd_to_gateway(url, job, registry.collector_registry, key, timeout, **extra)
        else:
            delete_from_gateway(url, job, key, timeout, **extra)
    except Exception as exc:
        group = ", ".join([f"job={job!r}", *(f"{k}={v!r}" for k, v in sorted(key.items()))])
        message = (f"{method} ({_METHODS[method]}) to pushgateway {url} failed for group "
                   f"{{{group}}}: {_describe(exc)}")
        if never_raise:
            registry.failures.failure("push", exc, message)
            return False
        raise PushError(message, gateway=url, job=job, method=method) from exc
    return True
