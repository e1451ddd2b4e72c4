"""Each queue now: depth, oldest-item age and readability, read from the queue itself."""

from __future__ import annotations

from typing import Any

from promkit.tools.report._change import change
from promkit.tools.report._figures import bucket_quantiles, fmt_seconds, index, num, whole
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import Collected
from promkit.tools.report.thresholds import FLOOR, Thresholds

__all__ = ["queues_section"]


def queues_section(c: Collected, t: Thresholds, issues: list[Issue]) -> list[dict[str, Any]]:
    """Depth, oldest-item age and readability of each queue, read now (the window's end)
    and at the end of the window before. The age is the one figure that shows a stuck
    worker: wait times are recorded only when a job is picked up."""
    figures = {name: index(c.instant.get(name, []), "queue")
               for name in ("queue_depth", "queue_age", "queue_up", "prev_queue_depth",
                            "prev_queue_age", "prev_queue_up")}
    waits = bucket_quantiles(c, "job_wait", ("queue",), 0.95)
    out: list[dict[str, Any]] = []
    for key in sorted(set(figures["queue_depth"]) | set(figures["queue_age"])
                      | set(figures["queue_up"])):
        queue = key[0]
        depth = num(figures["queue_depth"].get(key))
        age = num(figures["queue_age"].get(key))
        up = num(figures["queue_up"].get(key))
        entry: dict[str, Any] = {
            "queue": queue, "depth": whole(depth), "oldest_age_seconds": age,
            "up": None if up is None else up >= 1,
            "depth_previous": whole(num(figures["prev_queue_depth"].get(key))),
            "oldest_age_previous_seconds": num(figures["prev_queue_age"].get(key))}
        out.append(entry)
        evidence = {"depth": entry["depth"], "oldest_age_seconds": age, "up": entry["up"]}
        labels = {"queue": queue}
        subject = f"queue={queue}"  # as in v1's queue_depth issue
        if up is not None and up < 1:
            prev_up = num(figures["prev_queue_up"].get(key))
            # The change is of unreadability (1 - queue_up): new when it was read before.
            issues.append(Issue("critical", "queue_unreadable", subject,
                                f"queue {queue} cannot be read (queue_up 0): its depth and "
                                "age are unknown",
                                change=change(1.0, None if prev_up is None else 1 - prev_up,
                                              0.5),
                                evidence=evidence, labels=labels))
        wait = waits.get(key)
        # A stuck worker shows in the age long before the threshold: far longer than
        # jobs waited in the window (or none was picked up at all).
        stalled = (age is not None and age >= t.queue_stall_seconds and (depth or 0) > 0
                   and (wait is None or age > t.queue_stall_factor * wait.value))
        if age is not None and (age > t.queue_age_seconds or stalled):
            usual = (f"jobs waited p95 {fmt_seconds(wait.value)} in the window" if wait
                     else "no job was picked up in the window")
            issues.append(Issue("warning", "queue_age", subject,
                                f"queue {queue}: the oldest item has waited {fmt_seconds(age)} "
                                f"({entry['depth']} waiting; {usual})", age, "seconds",
                                change=change(age, entry["oldest_age_previous_seconds"],
                                              FLOOR * t.queue_age_seconds),
                                evidence=evidence, labels=labels))
        if depth is not None and depth > t.queue_depth:
            issues.append(Issue("warning", "queue_depth", subject,
                                f"queue {queue} holds {whole(depth)} items "
                                f"(threshold {t.queue_depth:.0f})", depth, "items",
                                change=change(depth, entry["depth_previous"],
                                              FLOOR * t.queue_depth),
                                evidence=evidence, labels=labels))
    return out
