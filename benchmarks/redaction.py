"""Redaction cost per log line: promkit's ``RedactPII`` now vs. at an earlier commit.

``python -m benchmarks.redaction [--baseline REV] [--instructions]`` runs the
redaction processor over a fixed, seeded corpus of log events shaped like a
service's lines (the event dict ``configure_logging`` hands the redactor:
timestamp, level, service, event, correlation ID and a few fields; 1 in 10
carries something to redact: an email, an IP, a token, a ``password=`` pair,
a card number...) and prices it per line, net of copying the event dict
(the processor changes it in place, so every call gets a fresh copy). Every
pass logs another seed's lines, so correlation IDs, job IDs and messages are
new each time and only what a service repeats (event names, enum-like values)
repeats.

Two variants, interleaved in one process: ``baseline``, the
``instrument/_logs_pii.py`` of ``REV`` (default ``main``) loaded from
``git show``, and ``current``, the working tree's. The timed rows give
median ns per line over repetitions and the ratio current ÷ baseline
(issue 16: within 1.10x). Two corpora: the realistic mix, where event names,
service names and other enum-like fields repeat as they do in a service's
logs, and the same lines with every string made unique (the worst case for
the redactor's memory of clean strings). ``--instructions`` also counts instructions per
line under valgrind's callgrind (deterministic, the better evidence on a
noisy shared machine): a short and a long run per variant, the difference
divided by the extra lines, so start-up cancels out.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks._common import median, table, verdict

ROOT = Path(__file__).resolve().parent.parent
MODULE_PATH = "instrument/_logs_pii.py"
TARGET = 1.10  # issue 16: redaction cost per line within 10% of before
LINES = 1000
DIRTY_EVERY = 10
CORPORA_PER_RUN = 8  # timed: repetitions cycle through this many seeds' corpora


def corpus(lines: int = LINES, seed: int = 16, unique: bool = False) -> list[dict[str, Any]]:
    """Seeded event dicts as the redactor sees them; every tenth carries PII or a secret.

    ``unique=True`` makes every string value of every line differ from all
    others (a line number appended): the worst case for anything that
    remembers strings seen before.
    """
    rng = random.Random(seed)

    def hexid(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    def cid() -> str:
        h = hexid(32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    clean: list[Callable[[], dict[str, Any]]] = [
        lambda: {"event": "job_created", "job_id": f"j-{hexid(12)}", "queue": "ocr",
                 "priority": rng.randint(0, 9)},
        lambda: {"event": "stage completed", "stage": "ocr", "job_id": f"j-{hexid(12)}",
                 "latency_ms": rng.random() * 900, "cpu_ms": rng.random() * 400},
        lambda: {"event": "http_request", "http_method": "GET", "http_path": "/jobs/{job_id}",
                 "http_status": 200, "latency_ms": rng.random() * 50},
        lambda: {"event": f"cache miss for voice {rng.choice(['alto', 'bass', 'tenor'])}, "
                          f"synthesising {rng.randint(10, 900)} characters",
                 "tokens": rng.randint(10, 4000)},
        lambda: {"event": "llm_call", "provider": "openai", "model": "gpt-4o-mini",
                 "prompt_tokens": rng.randint(10, 4000), "completion_tokens": rng.randint(1, 900),
                 "token_count": rng.randint(10, 5000), "cost_usd": rng.random()},
        lambda: {"event": "Worker stopped after 3 retries: upstream returned 503 Service "
                          "Unavailable", "error_code": "upstream_503", "attempt": 3},
        lambda: {"event": "webhook delivered", "status": 204,
                 "order_id": rng.randint(10**9, 10**10), "elapsed": "0:00:00.120"},
        lambda: {"event": "job_failed", "job_id": f"j-{hexid(12)}", "error_code": "timeout",
                 "detail": {"stage": "render", "retries": [1, 2, 3], "ok": False}},
        lambda: {"event": "GET /jobs/j-1 HTTP/1.1 200", "logger": "uvicorn.access"},
    ]
    dirty: list[Callable[[], dict[str, Any]]] = [
        lambda: {"event": "login", "email": f"u{hexid(6)}@example.com",
                 "user_id": f"user-{rng.randint(1, 10**6)}"},
        lambda: {"event": f"request from 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7 "
                          "rejected", "reason": "rate_limited"},
        lambda: {"event": "calling provider", "headers": {"Authorization": f"Bearer {hexid(32)}",
                                                          "Accept": "application/json"}},
        lambda: {"event": f"connect failed: password={hexid(10)} host=db"},
        lambda: {"event": "download", "url": f"https://bucket.s3.amazonaws.com/a.pdf?"
                                             f"X-Amz-Signature={hexid(40)}"},
        lambda: {"event": f"payment by card 4111 1111 1111 1111 for user u{hexid(6)}@ex.org"},
        lambda: {"event": "config loaded", "settings": {"DB_PASSWORD": hexid(12), "debug": True}},
        lambda: {"event": f"retrying with sk-{hexid(40)}"},
    ]
    out = []
    for n in range(lines):
        pick = dirty if n % DIRTY_EVERY == DIRTY_EVERY - 1 else clean
        event = rng.choice(pick)()
        line = {"timestamp": "2026-12-06T05:11:18.123Z", "level": "info", "service": "api",
                "correlation_id": cid(), **event}
        if unique:
            line = {key: f"{value} {seed}.{n}" if type(value) is str and key not in _TRUSTED
                    else value for key, value in line.items()}
        out.append(line)
    return out


_TRUSTED = ("timestamp", "level")  # not scanned by the redactor


def baseline_module(rev: str, directory: str) -> ModuleType:
    """``instrument/_logs_pii.py`` as it was at ``rev``, imported from a temp file."""
    source = subprocess.run(["git", "show", f"{rev}:{MODULE_PATH}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(directory) / "_redaction_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_redaction_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def current_module() -> ModuleType:
    from promkit.instrument import _logs_pii

    return _logs_pii


def run_lines(redactor: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        redactor(None, "info", dict(event))


def copy_only(events: list[dict[str, Any]]) -> None:
    for event in events:
        dict(event)


def timed(baseline: ModuleType, current: ModuleType, reps: int,
          unique: bool = False) -> dict[str, float]:
    """Median ns per line (net of the dict copy) for baseline and current, interleaved.

    Each repetition logs another seed's corpus (the variants of one repetition
    the same), so IDs and messages are new as in a running service and only
    what a service repeats (event names...) repeats.
    """
    corpora = [corpus(seed=seed, unique=unique) for seed in range(16, 16 + CORPORA_PER_RUN)]
    runners: dict[str, Callable[[list[dict[str, Any]]], None]] = {
        "copy": copy_only,
        "baseline": lambda events: run_lines(baseline.RedactPII(), events),
        "current": lambda events: run_lines(current.RedactPII(), events),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(reps + 1):  # the first is a warm-up: key caches, regex caches
        events = corpora[rep % len(corpora)]
        for k in range(len(names)):
            name = names[(rep + k) % len(names)]
            t0 = time.perf_counter()
            runners[name](events)
            if rep:
                times[name].append((time.perf_counter() - t0) * 1e9 / len(events))
    copy = median(times["copy"])
    return {name: median(values) - copy for name, values in times.items() if name != "copy"}


_CALLGRIND = """
import sys
sys.path.insert(0, {root!r})
from benchmarks import redaction as r
corpora = [r.corpus(seed=seed, unique={unique!r}) for seed in range(16, 16 + {large})]
module = r.baseline_module({rev!r}, {tmp!r}) if {which!r} == "baseline" else r.current_module()
redactor = module.RedactPII() if {which!r} != "copy" else None
for events in corpora[:{passes}]:  # another seed per pass: IDs are new, event names repeat
    if redactor is None:
        r.copy_only(events)
    else:
        r.run_lines(redactor, events)
"""


def instructions(rev: str, which: str, unique: bool = False, small: int = 1,
                 large: int = 4) -> float:
    """Instructions per line of ``which`` (copy, baseline or current) under callgrind."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for passes in (small, large):
            code = _CALLGRIND.format(root=str(ROOT), rev=rev, tmp=tmp, which=which,
                                     passes=passes, large=large, unique=unique)
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p",
                 sys.executable, "-c", code],
                env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
                timeout=1800, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{which}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
            found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
            if found is None:
                raise RuntimeError(f"no callgrind total:\n{proc.stderr[-2000:]}")
            totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / ((large - small) * LINES)


CORPORA = (("realistic mix", False), ("every string unique", True))


def run(rev: str = "main", reps: int = 41, count: bool = False) -> tuple[str, dict[str, Any]]:
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    rows = []
    raw: dict[str, Any] = {"baseline": commit}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = baseline_module(rev, tmp)
        for label, unique in CORPORA:
            ns = timed(baseline, current_module(), reps, unique)
            ratio = ns["current"] / ns["baseline"]
            rows.append([label, f"timed: ns / line (median of {reps})", f"{ns['baseline']:,.0f}",
                         f"{ns['current']:,.0f}", f"{ratio:.3f}x", verdict(ratio <= TARGET)])
            raw[label] = {"ns_per_line": ns, "ratio": ratio}
    if count:
        for label, unique in CORPORA:
            copy = instructions(rev, "copy", unique)
            counted = {w: instructions(rev, w, unique) - copy for w in ("baseline", "current")}
            ratio = counted["current"] / counted["baseline"]
            rows.append([label, "instructions / line (callgrind)", f"{counted['baseline']:,.0f}",
                         f"{counted['current']:,.0f}", f"{ratio:.3f}x", verdict(ratio <= TARGET)])
            raw[label].update(instructions_per_line=counted, instructions_ratio=ratio)
    text = (f"### Redaction cost per line ({LINES} seeded lines, 1 in {DIRTY_EVERY} with PII; "
            "net of copying the event dict)"
            f"\n\nbaseline: `{MODULE_PATH}` at {rev} ({commit}); target current ÷ baseline "
            f"<= {TARGET:.2f}x (issue 16)\n\n"
            + table(["corpus", "measure", f"baseline {commit}", "current", "ratio", "<= 1.10x"],
                    rows, ["l", "l", "r", "r", "r", "l"]))
    return text, raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.redaction", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="main", help="git revision to compare with (main)")
    ap.add_argument("--reps", type=int, default=41, help="timed repetitions (41)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions per line with valgrind's callgrind")
    args = ap.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    text, _ = run(args.baseline, args.reps, args.instructions)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
