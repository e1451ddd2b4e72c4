"""The exemplar files of multiprocess mode as the exporters read them: merge and cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from promkit.instrument.exemplar_files import (
    MAX_AGE_SECONDS,
    read_exemplar_files,
    remove_stale_files,
)


def write_file(path: Path, pid: int, entries: list[list[Any]]) -> Path:
    target = path / f"exemplars_{pid}.json"
    target.write_text(json.dumps({"version": 1, "pid": pid, "written": time.time(),
                                  "exemplars": entries}))
    return target


def bucket(le: str, route: str = "/a") -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("work_seconds_bucket", (("le", le), ("route", route)))


def test_merge_keeps_the_newest_exemplar_per_sample_across_files(tmp_path):
    now = time.time()
    write_file(tmp_path, 101, [
        ["work_seconds_bucket", [["le", "0.1"], ["route", "/a"]], {"trace_id": "old"}, 0.05,
         now - 10],
        ["work_seconds_bucket", [["le", "1.0"], ["route", "/a"]], {"trace_id": "only101"}, 0.5,
         now - 5],
    ])
    write_file(tmp_path, 102, [
        ["work_seconds_bucket", [["le", "0.1"], ["route", "/a"]], {"trace_id": "new"}, 0.07,
         now - 1],
        ["jobs_done_total", [["kind", "x"]], {"trace_id": "c"}, 1.0, now - 2],
    ])
    (tmp_path / "exemplars_103.json.tmp").write_text("{half a fi")  # being written: ignored
    newest = read_exemplar_files(str(tmp_path))
    assert {k: (e.labels["trace_id"], e.value) for k, e in newest.items()} == {
        bucket("0.1"): ("new", 0.07),
        bucket("1.0"): ("only101", 0.5),
        ("jobs_done_total", (("kind", "x"),)): ("c", 1.0),
    }


def test_remove_stale_files_is_pure_given_liveness_and_clock(tmp_path):
    write_file(tmp_path, 11, [])
    write_file(tmp_path, 12, [])
    now = time.time() + 2 * MAX_AGE_SECONDS
    removed = remove_stale_files(str(tmp_path), lambda pid: pid == 12, now=now)
    assert removed == ["exemplars_11.json"]
    assert remove_stale_files(str(tmp_path), lambda pid: False) == []  # fresh: kept
