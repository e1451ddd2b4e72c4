"""Queue specs (promkit.instrument._redis_specs): parsing and validation."""

from __future__ import annotations

import pytest

from promkit.instrument.queues import (
    QueueSpec,
    QueueSpecError,
    parse_queue_spec,
)

# ------------------------------------------------------------------------ specs


@pytest.mark.parametrize(("text", "expected"), [
    ("list:jobs", QueueSpec("list", "jobs")),
    ("list:app:jobs", QueueSpec("list", "app:jobs")),
    ("list:jobs?end=left&age=enqueued_at&name=j",
     QueueSpec("list", "jobs", "j", oldest_end="left", age_field="enqueued_at")),
    ("list:rq:queue:default?age=none&name=default",
     QueueSpec("list", "rq:queue:default", "default", age_field=None)),
    ("stream:events", QueueSpec("stream", "events")),
    ("stream:events:workers", QueueSpec("stream", "events", groups=("workers",))),
    ("stream:app:events:workers", QueueSpec("stream", "app:events", groups=("workers",))),
    ("stream:app:events?group=a&group=b", QueueSpec("stream", "app:events", groups=("a", "b"))),
    ("stream:app:events?group=*", QueueSpec("stream", "app:events")),
    ("zset:delayed", QueueSpec("zset", "delayed")),
    ("zset:delayed?age=score_ms", QueueSpec("zset", "delayed", score_age="score_ms")),
])
def test_parse_valid_specs(text: str, expected: QueueSpec) -> None:
    spec = parse_queue_spec(text)
    assert spec == expected
    assert QueueSpec.parse(text) == spec
    assert spec.name == (expected.name or expected.key)


@pytest.mark.parametrize(("text", "message"), [
    ("jobs", "no type"),
    ("lst:jobs", "unknown type 'lst'"),
    ("list:", "the key is empty"),
    ("list:?name=x", "the key is empty"),
    ("stream:events:", "empty consumer group"),
    ("list:jobs?", "nothing after '?'"),
    ("list:jobs?end", "has no '='"),
    ("list:jobs?end=middle", "end must be 'left' or 'right'"),
    ("list:jobs?group=w", "unknown option 'group' for a list"),
    ("zset:d?age=minutes", "age must be 'none', 'score'"),
    ("zset:d?end=left", "unknown option 'end' for a zset"),
    ("stream:s?age=x", "unknown option 'age' for a stream"),
    ("list:jobs?name=", "empty value"),
    ("list:jobs?name=a&name=b", "'name' given 2 times"),
    ("stream:s?group=a&group=a", "named twice"),
    ("stream:s?group=*&group=a", "cannot be combined"),
    ("list:jobs?age=bad field", "not a plain field name"),
])
def test_parse_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(QueueSpecError) as info:
        parse_queue_spec(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_spec_objects_are_validated() -> None:
    with pytest.raises(QueueSpecError, match="consumer groups apply to streams"):
        QueueSpec("list", "jobs", groups=("g",))
    with pytest.raises(QueueSpecError, match="kind must be one of"):
        QueueSpec("hash", "jobs")  # type: ignore[arg-type]
    with pytest.raises(QueueSpecError, match="key is empty"):
        QueueSpec("list", "")
    assert QueueSpec("list", "jobs").push_left
    assert not QueueSpec("list", "jobs", oldest_end="left").push_left
