"""The metric classes' former module, kept for the modules that still import it.

The metric classes were split by concept (issue #18); import from the modules
themselves: families in :mod:`promkit.instrument.metrics`, single-process
children in :mod:`promkit.instrument._children`, multiprocess children in
:mod:`promkit.instrument._mp_children`, recorders in
:mod:`promkit.instrument._recorders`, exemplars in
:mod:`promkit.instrument._exemplars`. This module only re-exports (the
middleware, stage timers and failure sink still import from here).
"""

from __future__ import annotations

from promkit.instrument._children import NULL_CHILD, InProgressTokens
from promkit.instrument._exemplars import ExemplarLabels, RawExemplar
from promkit.instrument._exemplars import to_exemplar as _to_exemplar
from promkit.instrument._mp_children import MultiprocessCounterChild, MultiprocessHistogramChild
from promkit.instrument._recorders import http_request_recorder, paired_recorder
from promkit.instrument.metrics import (
    OVERFLOW_VALUE,
    Counter,
    Gauge,
    Histogram,
    MetricBase,
    exposition_state,
)

__all__ = [
    "NULL_CHILD",
    "OVERFLOW_VALUE",
    "Counter",
    "ExemplarLabels",
    "Gauge",
    "Histogram",
    "InProgressTokens",
    "MetricBase",
    "MultiprocessCounterChild",
    "MultiprocessHistogramChild",
    "RawExemplar",
    "_to_exemplar",
    "exposition_state",
    "http_request_recorder",
    "paired_recorder",
]
