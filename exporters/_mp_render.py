"""Render a merged multiprocess scrape as text 0.0.4, OpenMetrics, or prometheus-client families.

The text is written directly from the merged values (no intermediate
``Metric``/``Sample`` objects): each label set's label string is built once
and kept on its :class:`~promkit.exporters._mp_read.Group`, so a scrape formats
only numbers. Families are sorted by name; within one, label sets keep the
order they first appeared in, each set's samples together (buckets by ``le``,
then ``_count``, then the rest), as OpenMetrics requires. A family with no
sample left (say, live gauges of processes that all exited) is not written,
as prometheus-client's merge would not have it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from promkit.exporters._exposition import (
    _escape_help,
    _escape_help_om,
    _escape_label,
    _exemplar_suffix,
    format_value,
)
from promkit.exporters._mp_read import Family, Group, LabelKey, Merged

__all__ = ["ExemplarIndex", "UnitOf", "metric_families", "render_openmetrics", "render_text"]

UnitOf = Callable[[str, str], str]
"""(exposed family name, type) -> the unit to declare, or ''."""
ExemplarIndex = dict[tuple[str, LabelKey], Exemplar]
"""(sample name, sorted labels) -> the exemplar to attach."""


def _body(labels: LabelKey) -> str:
    return ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)


def _strings(group: Group) -> tuple[str, list[str]]:
    """The group's braced label string and its bucket prefixes (after the sample name)."""
    cached = group.render.get("strings")
    if cached is None or len(cached[1]) != len(group.buckets):
        body = _body(group.labels)
        sep = "," if body else ""
        braced = "{" + body + "}" if body else ""
        cached = group.render["strings"] = (
            braced, [f'{{{body}{sep}le="{text}"}} ' for _, text, _ in group.buckets])
    return cached


def _bucket_keys(group: Group) -> list[LabelKey]:
    """Each bucket's full label set, sorted: how exemplars are looked up."""
    cached = group.render.get("bucket_keys")
    if cached is None or len(cached) != len(group.buckets):
        cached = group.render["bucket_keys"] = [
            tuple(sorted((*group.labels, ("le", text)))) for _, text, _ in group.buckets]
    return cached


def _family_lines(family: Family, merged: Merged,
                  exemplars: ExemplarIndex | None) -> Iterator[str]:
    values, present = merged.values, merged.present
    base = family.name
    for group in family.groups.values():
        braced, prefixes = _strings(group)
        if group.buckets:
            acc = 0.0
            seen = False
            keys = _bucket_keys(group) if exemplars else None
            for i, (_, _, slot) in enumerate(group.buckets):
                if slot in present:
                    seen = True
                    acc += values[slot]
                    line = f"{base}_bucket{prefixes[i]}{format_value(acc)}"
                    if keys is not None and exemplars:
                        line += _exemplar_suffix(exemplars.get((base + "_bucket", keys[i])))
                    yield line + "\n"
            if seen:
                yield f"{base}_count{braced} {format_value(acc)}\n"
        for name, slot in group.samples:
            if slot in present:
                line = f"{name}{braced} {format_value(values[slot])}"
                if exemplars and family.type == "counter":
                    line += _exemplar_suffix(exemplars.get((name, group.labels)))
                yield line + "\n"


def _has_samples(family: Family, present: set[int]) -> bool:
    return any(slot in present for group in family.groups.values()
               for slot in (*(b[2] for b in group.buckets), *(s[1] for s in group.samples)))


def render_text(merged: Merged) -> str:
    """Prometheus text 0.0.4, as prometheus-client's ``generate_latest`` writes it."""
    out: list[str] = []
    for family in merged.families:
        if not _has_samples(family, merged.present):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.type}\n")
        out.extend(_family_lines(family, merged, None))
    return "".join(out)


def render_openmetrics(merged: Merged, unit_of: UnitOf,
                       exemplars: ExemplarIndex | None = None) -> str:
    """OpenMetrics 1.0 with ``# EOF``; ``exemplars`` go on counter and bucket samples."""
    out: list[str] = []
    for family in merged.families:
        if not _has_samples(family, merged.present):
            continue
        name = family.name
        out.append(f"# HELP {name} {_escape_help_om(family.help)}\n# TYPE {name} {family.type}\n")
        unit = unit_of(name, family.type)
        if unit:
            out.append(f"# UNIT {name} {unit}\n")
        out.extend(_family_lines(family, merged, exemplars))
    out.append("# EOF\n")
    return "".join(out)


def metric_families(merged: Merged, unit_of: UnitOf) -> list[Metric]:
    """The merge as prometheus-client ``Metric`` families (what ``MultiProcessCollector`` gives)."""
    values, present = merged.values, merged.present
    result: list[Metric] = []
    for family in merged.families:
        if not _has_samples(family, present):
            continue
        metric = Metric(family.name, family.help, family.type)
        unit = unit_of(family.name, family.type)
        if unit:
            metric.unit = unit
        for group in family.groups.values():
            labels = dict(group.labels)
            acc = 0.0
            seen = False
            for _, text, slot in group.buckets:
                if slot in present:
                    seen = True
                    acc += values[slot]
                    metric.add_sample(family.name + "_bucket", {**labels, "le": text}, acc)
            if seen:
                metric.add_sample(family.name + "_count", labels, acc)
            for name, slot in group.samples:
                if slot in present:
                    metric.add_sample(name, labels, values[slot])
        result.append(metric)
    return result
