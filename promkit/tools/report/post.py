"""Send the digest to a webhook: Discord, Slack, ntfy or a generic JSON receiver.

Something is always sent — ``✓ nominal`` or ``⚠ n issues`` with the top
issues, or, when no report could be made (Prometheus unreachable or empty),
``⚠ promkit report failed`` with what could not be read
(:func:`post_failure`) — so a digest that stops arriving means the job broke
or the webhook is unreachable. The payload
shape follows the URL's host (``discord.com``/``discordapp.com``,
``hooks.slack.com``, ``ntfy.sh`` or a host with ``ntfy`` in its name) unless
``fmt`` names one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from promkit.tools.report.model import Report
from promkit.tools.report.render import digest

__all__ = ["FORMATS", "PostError", "build_failure_payload", "build_payload", "detect_format",
           "post_failure", "post_report"]

FORMATS = ("auto", "discord", "slack", "ntfy", "generic")


class PostError(Exception):
    """The webhook could not be reached or refused the digest (one-line message)."""


def detect_format(url: str) -> str:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host.endswith(("discord.com", "discordapp.com")):
        return "discord"
    if host.endswith("slack.com"):
        return "slack"
    if "ntfy" in host:
        return "ntfy"
    return "generic"


def build_payload(report: Report, fmt: str) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` for the format (``auto`` is resolved by :func:`post_report`)."""
    title, body = digest(report)
    critical = any(i.severity == "critical" for i in report.current_issues)
    return _payload(fmt, title, body, priority=(
        "high" if critical else ("default" if report.current_issues else "low")),
        ok=not report.current_issues, generic={
            "status": report.status, "issues": len(report.current_issues),
            "report": report.to_dict(charts=False)})


def build_failure_payload(error: str, fmt: str, *, prometheus: str, since: str,
                          service: str | None = None) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` of the message sent when no report could be made.

    It says what could not be read (``error``, one line) so the digest still
    arrives, as a warning, exactly when the service most needs a look.
    """
    scope = f" {service}" if service else ""
    title = f"⚠ promkit report failed — promkit report{scope} (last {since})"
    body = (f"• [critical] the report could not be made: {error}\n"
            f"Nothing was checked: the state of the service is unknown until a report "
            f"runs again. Prometheus: {prometheus}")
    return _payload(fmt, title, body, priority="high", ok=False, generic={
        "status": "failed", "issues": 1, "error": error, "prometheus": prometheus,
        "report": None})


def _payload(fmt: str, title: str, body: str, *, priority: str, ok: bool,
             generic: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    if fmt == "discord":
        # Discord caps a message at 2000 characters; digest() stays under.
        data: dict[str, Any] = {"content": f"**{title}**\n{body}"[:2000]}
        return json.dumps(data).encode(), {"Content-Type": "application/json"}
    if fmt == "slack":
        data = {"text": f"*{title}*\n{body}"}
        return json.dumps(data).encode(), {"Content-Type": "application/json"}
    if fmt == "ntfy":
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            # HTTP headers are latin-1: ntfy accepts RFC 2047 for the rest.
            "Title": "=?UTF-8?B?" + _b64(title) + "?=",
            "Priority": priority,
            "Tags": "white_check_mark" if ok else "warning",
        }
        return body.encode(), headers
    if fmt == "generic":
        data = {"title": title, "text": body, **generic}
        return json.dumps(data, ensure_ascii=False).encode(), {
            "Content-Type": "application/json"}
    raise ValueError(f"unknown post format {fmt!r}; use one of {', '.join(FORMATS)}")


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def post_report(report: Report, url: str, *, fmt: str = "auto", timeout: float = 10.0) -> str:
    """POST the digest; returns the format used. Raises :class:`PostError`."""
    chosen = _format(url, fmt)
    body, headers = build_payload(report, chosen)
    _send(url, body, headers, timeout)
    return chosen


def post_failure(error: str, url: str, *, prometheus: str, since: str,
                 service: str | None = None, fmt: str = "auto", timeout: float = 10.0) -> str:
    """POST the message that no report could be made (see :func:`build_failure_payload`);
    returns the format used. Raises :class:`PostError`."""
    chosen = _format(url, fmt)
    body, headers = build_failure_payload(error, chosen, prometheus=prometheus, since=since,
                                          service=service)
    _send(url, body, headers, timeout)
    return chosen


def _format(url: str, fmt: str) -> str:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PostError(f"--post URL must be http(s), not {url.split(':', 1)[0]!r}")
    return detect_format(url) if fmt == "auto" else fmt


def _send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    where = _redacted(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise PostError(f"webhook {where} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PostError(f"cannot reach webhook {where}: {getattr(exc, 'reason', exc)}") from None


def _redacted(url: str) -> str:
    """Scheme and host only: webhook paths often hold the secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
