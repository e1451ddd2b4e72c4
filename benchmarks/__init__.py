"""promkit benchmarks, run with ``python -m benchmarks`` (``make bench``).

Three measurements, each printed as a markdown table that puts promkit and
prometheus-client side by side from the same run:

* ``scrape``: rendering a 1k / 10k-series exposition (text and OpenMetrics);
* ``stall``: latency of a tiny endpoint while the same uvicorn app serves its
  10k-series ``/metrics`` (no scrapes, one per second, back to back);
* ``multiprocess``: merging 8 processes' mmap files into one exposition.

A benchmark, not a test: it reports medians, ratios and PASS/MISS against the
targets of the issue, and never fails on a miss.
"""
