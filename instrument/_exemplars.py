"""Exemplars as the metric children keep them: raw on the hot path, checked when read.

An exemplar is stored raw (labels, value, time) when it is recorded and turned
into a prometheus-client :class:`~prometheus_client.samples.Exemplar` only when
it is read (a scrape, or the multiprocess exemplar file): an oversized label set
is dropped then, and counted, and a plain correlation ID becomes its label set
then, not once per observation. Used by the single-process and multiprocess
children and by :mod:`promkit.instrument._mp_exemplars`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.samples import Exemplar

if TYPE_CHECKING:
    from promkit.instrument._safety import FailureSink

__all__ = [
    "CORRELATION_EXEMPLAR_LABEL",
    "EXEMPLAR_MAX_RUNES",
    "ExemplarLabels",
    "RawExemplar",
    "to_exemplar",
]

# OpenMetrics caps an exemplar's label set at 128 UTF-8 characters.
EXEMPLAR_MAX_RUNES = 128

ExemplarLabels = dict[str, str] | str
"""An exemplar's label set, or a correlation ID standing for ``{"correlation_id": id}``."""
CORRELATION_EXEMPLAR_LABEL = "correlation_id"

RawExemplar = tuple[ExemplarLabels, float, float]
"""(labels, value, timestamp) as recorded; :func:`to_exemplar` checks and converts it."""


def to_exemplar(raw: RawExemplar | None, sink: FailureSink) -> Exemplar | None:
    """The exemplar to export, or None (none recorded, or invalid: counted in ``sink``)."""
    if raw is None:
        return None
    labels, value, timestamp = raw
    if isinstance(labels, str):
        labels = {CORRELATION_EXEMPLAR_LABEL: labels}
    try:
        size = 0
        for key, val in labels.items():
            size += len(key) + len(val)
            if not (key.isascii() and val.isascii()):
                (key + val).encode("utf-8")  # a lone surrogate would fail the whole scrape
        if size > EXEMPLAR_MAX_RUNES:
            raise ValueError(
                f"exemplar labels have {size} characters; OpenMetrics allows {EXEMPLAR_MAX_RUNES}"
            )
        return Exemplar(labels, value, timestamp)
    except Exception as exc:
        sink.failure("exemplar", exc)
        return None

