"""The stage line: the fast path writes exactly the pipeline's line, or nothing."""

from typing import Any

import structlog
from _log_helpers import (  # tests/ is on sys.path
    FIXED_TIME,
    active_span,
    configured,
    nothing,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from promkit.instrument import logs
from promkit.instrument._log_state import current
from promkit.instrument.correlation import (
    correlation_id_var,
)

STAGE_CALL = st.tuples(
    st.one_of(st.sampled_from(["ocr", "tts", "mail bob@x.io"]), st.text(max_size=20)),
    st.floats(0, 1e4, allow_nan=False),
    st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)),
    st.one_of(st.none(), st.sampled_from(["j-1", "10.1.2.3", "bob@x.io"]), st.text(max_size=20),
              st.integers()),
    st.sampled_from(["none", "promkit", "structlog", "other key bound"]),
)


@settings(max_examples=300, deadline=None)
@given(call=STAGE_CALL, traced=st.booleans())
def test_stage_fast_path_writes_exactly_the_pipeline_line_or_nothing(call, traced):
    stage, wall, cpu, job_id, context = call
    cid = "0c4f7c2e-8a4b-4a51-9c3e-1234567890ab"
    with configured(service="worker") as own:
        current.state.timestamper.clock = lambda: FIXED_TIME
        writer = logs.StageLineWriter("promkit.worker")
        span = active_span(0x5EED, 0xB0B) if traced else nothing()
        bound: dict[str, Any] = {
            "none": {}, "promkit": {}, "structlog": {"correlation_id": cid, "job_id": "j-bound"},
            "other key bound": {"tenant": "acme"},
        }[context]
        # Unbound unless "promkit": set to None it would be merged as correlation_id=None
        # (the variable is structlog's context too).
        token = correlation_id_var.set(cid) if context == "promkit" else None
        try:
            with span, structlog.contextvars.bound_contextvars(**bound):
                wrote = writer.completed(stage, wall, cpu, job_id)
                fast = list(own.lines)
                own.lines.clear()
                fields: dict[str, Any] = {} if cpu is None else {"cpu_ms": logs.round_ms(cpu)}
                if job_id is not None:
                    fields["job_id"] = job_id
                structlog.get_logger("promkit.worker").info(
                    logs.STAGE_COMPLETED_EVENT, stage=stage, latency_ms=logs.round_ms(wall),
                    **fields)
        finally:
            if token is not None:
                correlation_id_var.reset(token)
        slow = list(own.lines)
    assert fast == (slow if wrote else [])
    plain = stage in ("ocr", "tts") and job_id in (None, "j-1")
    if plain and context != "other key bound":
        assert wrote  # the common case takes the fast path
    if context == "other key bound":
        assert not wrote and "acme" in slow[0]
