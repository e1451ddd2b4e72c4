"""Instructions per multiprocess scrape, counted by callgrind (repeatable on a busy machine).

``python -m benchmarks.mp_instructions [--processes 64] [--series 1000]``
writes the files of one process recording ``--series`` synthetic series
(``benchmarks.multiprocess.write_series``) and copies them under
``--processes`` process identifiers that are not pids (``w0``, ``w1``...: never
taken for dead, so nothing is compacted and both sides read the same files).
Then, for each of prometheus_client (``MultiProcessCollector`` +
``generate_latest``), promkit warm and promkit cold (its reader dropped before
each scrape), it runs 1 and 3 scrapes under ``valgrind --tool=callgrind``
after one untimed scrape of each side, and prints (3-scrape total - 1-scrape
total) / 2: the instructions of one scrape, start-up cancelled out.

Needs Debian's ``valgrind``; not part of ``make bench`` (it takes minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

_PROGRAM = """
import os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = path = sys.argv[1]
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as pc_mp
from promkit.exporters import _multiprocess, multiprocess_exposition

def pc():
    registry = CollectorRegistry()
    pc_mp.MultiProcessCollector(registry, path)
    return generate_latest(registry)

def cold():
    _multiprocess._readers.clear()
    return multiprocess_exposition().encode()

scrape = {"prometheus_client": pc, "promkit_warm": lambda: multiprocess_exposition().encode(),
          "promkit_cold": cold}[sys.argv[2]]
pc(); multiprocess_exposition()
for _ in range(int(sys.argv[3])):
    scrape()
"""


def _write(path: str, processes: int, series: int) -> None:
    with tempfile.TemporaryDirectory() as one:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": one}
        subprocess.run([sys.executable, "-c", "from benchmarks.multiprocess import "
                        f"write_series; write_series({series})"], env=env, check=True)
        for name in os.listdir(one):
            prefix = name.rpartition("_")[0]
            for i in range(processes):
                shutil.copy(os.path.join(one, name), os.path.join(path, f"{prefix}_w{i}.db"))


def _instructions(path: str, entry: str, scrapes: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg",
             sys.executable, "-c", _PROGRAM, path, entry, str(scrapes)],
            capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=64)
    ap.add_argument("--series", type=int, default=1000)
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian package 'valgrind')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="promkit-mp-ir-") as path:
        _write(path, args.processes, args.series)
        counts = {}
        for entry in ("prometheus_client", "promkit_warm", "promkit_cold"):
            print(f"[mp-instructions] {entry}", file=sys.stderr, flush=True)
            counts[entry] = (_instructions(path, entry, 3) - _instructions(path, entry, 1)) // 2
    base = counts["prometheus_client"]
    print(f"Instructions per scrape, {args.processes} processes x {args.series} series:")
    for entry, n in counts.items():
        versus = "" if n == base else f"  ({base / n:.1f}x fewer than prometheus_client)"
        print(f"  {entry:18} {n / 1e6:9.1f} M{versus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
