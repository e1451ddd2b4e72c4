"""Queue specs: which Redis key to watch, as what, and how to read its oldest item.

A spec is written ``TYPE:KEY`` with optional ``?option=value&...``:

- ``list:jobs`` -- a list; the oldest item is at the right end (producers
  ``LPUSH``, workers ``BRPOP``), as :func:`promkit.instrument.queues.enqueue` does.
  Options: ``end=left|right`` (the end holding the oldest item),
  ``age=FIELD|none`` (the JSON field holding the enqueue time, default
  ``created_at``; ``none`` reports no age).
- ``stream:events`` or ``stream:events:workers`` -- a stream, optionally
  with one consumer group (the part after the last colon). Option
  ``group=NAME`` (repeatable) names groups explicitly, and then the whole
  text before ``?`` is the key (``stream:app:events?group=workers``);
  ``group=*`` means every group, for a key holding colons. Without a group
  every group of the stream is reported.
- ``zset:delayed`` -- a sorted set. Option ``age=none|score|score_ms``: the
  score is the enqueue time in epoch seconds or milliseconds (default
  ``none``: scores such as run-at times say nothing about age).

Every type accepts ``name=LABEL``: the ``queue`` label value (default: the key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["QueueKind", "QueueSpec", "QueueSpecError", "parse_queue_spec"]

QueueKind = Literal["list", "stream", "zset"]
ListEnd = Literal["left", "right"]
ScoreAge = Literal["none", "score", "score_ms"]

_KINDS: tuple[QueueKind, ...] = ("list", "stream", "zset")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "list": ("name", "end", "age"),
    "stream": ("name", "group"),
    "zset": ("name", "age"),
}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SHAPES = "list:KEY, stream:KEY[:GROUP] or zset:KEY, each with optional ?option=value&..."


class QueueSpecError(ValueError):
    """A queue spec (string or :class:`QueueSpec`) that cannot be used."""


@dataclass(frozen=True)
class QueueSpec:
    """One Redis queue to report.

    ``kind`` is ``list``, ``stream`` or ``zset``; ``key`` the Redis key;
    ``name`` the ``queue`` label (default: the key). Lists: ``oldest_end``
    says which end holds the oldest item, ``age_field`` which JSON field of
    an item holds its enqueue time (epoch seconds or ISO 8601; None: no age).
    Streams: ``groups`` to report (empty: every group of the stream).
    Sorted sets: ``score_age`` is ``score`` (the score is the enqueue time in
    epoch seconds), ``score_ms`` (milliseconds) or ``none``.
    """

    kind: QueueKind
    key: str
    name: str = ""
    groups: tuple[str, ...] = ()
    oldest_end: ListEnd = "right"
    age_field: str | None = "created_at"
    score_age: ScoreAge = "none"

    def __post_init__(self) -> None:
        where = f"queue spec for key {self.key!r}"
        if self.kind not in _KINDS:
            raise QueueSpecError(f"{where}: kind must be one of {list(_KINDS)}, not {self.kind!r}")
        if not isinstance(self.key, str) or not self.key:
            raise QueueSpecError(f"queue spec ({self.kind}): the key is empty")
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.name:
            object.__setattr__(self, "name", self.key)
        if self.groups and self.kind != "stream":
            raise QueueSpecError(f"{where}: consumer groups apply to streams, not a {self.kind}")
        for group in self.groups:
            if not isinstance(group, str) or not group:
                raise QueueSpecError(f"{where}: a consumer group name is empty")
        if len(set(self.groups)) != len(self.groups):
            raise QueueSpecError(f"{where}: a consumer group is named twice in {self.groups}")
        if self.oldest_end not in ("left", "right"):
            raise QueueSpecError(f"{where}: oldest_end must be 'left' or 'right', "
                                 f"not {self.oldest_end!r}")
        if self.age_field is not None and not _FIELD.match(self.age_field):
            raise QueueSpecError(f"{where}: age field {self.age_field!r} is not a plain field "
                                 "name (letters, digits, '_', '.', '-')")
        if self.score_age not in ("none", "score", "score_ms"):
            raise QueueSpecError(f"{where}: score_age must be 'none', 'score' or 'score_ms', "
                                 f"not {self.score_age!r}")

    @classmethod
    def parse(cls, text: str) -> QueueSpec:
        """Parse ``list:KEY``, ``stream:KEY[:GROUP]`` or ``zset:KEY`` (with ``?options``)."""
        return parse_queue_spec(text)

    @property
    def push_left(self) -> bool:
        """Whether producers push on the left (the oldest item is at the right)."""
        return self.oldest_end == "right"

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"


def parse_queue_spec(text: str) -> QueueSpec:
    """A :class:`QueueSpec` from its string form; raises :class:`QueueSpecError` naming the fault.

    >>> parse_queue_spec("stream:events:workers").groups
    ('workers',)
    """
    if not isinstance(text, str):
        raise QueueSpecError(f"queue spec must be a string, not {type(text).__name__}")
    where = f"queue spec {text!r}"
    kind, colon, rest = text.partition(":")
    kind = kind.strip()
    if not colon:
        raise QueueSpecError(f"{where}: no type; write {_SHAPES}")
    if kind not in _KINDS:
        raise QueueSpecError(f"{where}: unknown type {kind!r}; write {_SHAPES}")
    key, question, query = rest.partition("?")
    options = _parse_options(where, kind, query) if question else {}
    if question and not query:
        raise QueueSpecError(f"{where}: nothing after '?'; remove it or add option=value")

    names = options.pop("name", [])
    if len(names) > 1:
        raise QueueSpecError(f"{where}: option 'name' given {len(names)} times")
    name = names[0] if names else ""

    groups: tuple[str, ...] = ()
    if kind == "stream":
        given = options.pop("group", [])
        if given:
            groups = () if given == ["*"] else tuple(given)
            if "*" in groups:
                raise QueueSpecError(f"{where}: group=* (every group) cannot be combined with "
                                     "named groups")
        elif ":" in key:
            key, _, group = key.rpartition(":")
            if not group:
                raise QueueSpecError(f"{where}: empty consumer group after the last ':'; "
                                     "drop the ':' or name the group")
            groups = (group,)
    if not key:
        raise QueueSpecError(f"{where}: the key is empty; write {_SHAPES}")

    end: ListEnd = "right"
    age_field: str | None = "created_at"
    score_age: ScoreAge = "none"
    if kind == "list":
        end_value = _single(where, options, "end")
        if end_value is not None:
            if end_value not in ("left", "right"):
                raise QueueSpecError(f"{where}: end must be 'left' or 'right', "
                                     f"not {end_value!r}")
            end = "left" if end_value == "left" else "right"
        age_value = _single(where, options, "age")
        if age_value is not None:
            age_field = None if age_value == "none" else age_value
    elif kind == "zset":
        age_value = _single(where, options, "age")
        if age_value is not None:
            if age_value not in ("none", "score", "score_ms"):
                raise QueueSpecError(f"{where}: age must be 'none', 'score' (epoch seconds) or "
                                     f"'score_ms' (epoch milliseconds), not {age_value!r}")
            score_age = "score" if age_value == "score" else (
                "score_ms" if age_value == "score_ms" else "none")
    try:
        return QueueSpec(kind, key, name, groups, end, age_field, score_age)
    except QueueSpecError as exc:
        raise QueueSpecError(f"{where}: {exc}") from None


def _parse_options(where: str, kind: str, query: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    if not query:
        return options
    allowed = _OPTIONS[kind]
    for part in query.split("&"):
        option, equals, value = part.partition("=")
        if not equals:
            raise QueueSpecError(f"{where}: option {part!r} has no '='; write option=value")
        if option not in allowed:
            raise QueueSpecError(f"{where}: unknown option {option!r} for a {kind}; "
                                 f"allowed: {', '.join(allowed)}")
        if not value:
            raise QueueSpecError(f"{where}: option {option!r} has an empty value")
        options.setdefault(option, []).append(value)
    return options


def _single(where: str, options: dict[str, list[str]], option: str) -> str | None:
    values = options.pop(option, [])
    if len(values) > 1:
        raise QueueSpecError(f"{where}: option {option!r} given {len(values)} times")
    return values[0] if values else None
