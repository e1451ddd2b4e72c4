"""The JSON snapshot in pieces (issue 19): the same document, byte for byte, as
the one-shot ``json.dumps``, and a scrape that lets the event loop run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry

import promkit.exporters._asgi as asgi_module
from promkit.exporters import metrics_app, multiprocess_json, render_json
from promkit.exporters._exposition import json_chunks, render_json_chunks
from promkit.instrument import MetricsRegistry

# Escapes JSON and the text format care about, and non-ASCII (json.dumps writes \\uXXXX).
ODD_VALUES = ['quote"d', "back\\slash", "new\nline", "tab\there", "ünïcødé", "日本", "emoji 🎉",
              "", "{}[],: "]


def rich_registry(series: int) -> MetricsRegistry:
    registry = MetricsRegistry(CollectorRegistry())
    hits = registry.counter("hits_total", 'Hits with "quotes" and ünïcødé.', ["k", "odd"],
                            series_limit=series + 1)
    depth = registry.gauge("depth", "Depth\nover two lines.", ["k"], series_limit=series + 1)
    latency = registry.histogram("work_seconds", "Work.", ["route"], unit="seconds",
                                 buckets=(0.005, 0.1, 1.0, 2.5), series_limit=series + 1)
    registry.counter("never_used_total", "No series yet.", ["k"])
    for i in range(series):
        odd = ODD_VALUES[i % len(ODD_VALUES)]
        hits.labels(f"series-{i}", odd).inc(i * 0.5)
        depth.labels(f"{odd}-{i}").set(float("inf") if i == 7 else -i / 3)
        latency.labels(f"/r/{odd}/{i}").observe(0.001 * (i % 11) + (10 if i % 5 == 0 else 0))
    depth.labels("nan").set(float("nan"))
    return registry


@pytest.mark.parametrize("chunk_series", [1, 7, 256, 10_000])
def test_chunked_json_is_the_one_shot_document(chunk_series):
    registry = rich_registry(1_500)
    one_shot = json.dumps(render_json(registry))
    pieces = list(render_json_chunks(registry, chunk_series))
    assert "".join(pieces) == one_shot
    assert "".join(json_chunks(render_json(registry), chunk_series)) == one_shot
    json.loads(one_shot, parse_constant=pytest.fail)  # strict: no NaN/Infinity literals
    if chunk_series <= 256:  # bounded pieces: none holds more than one chunk of samples
        assert len(pieces) >= 3 * 1_500 // chunk_series
        assert max(len(p) for p in pieces) < len(one_shot) / 5


def test_empty_registry_is_the_one_shot_document():
    registry = MetricsRegistry(CollectorRegistry())
    assert "".join(render_json_chunks(registry)) == json.dumps(render_json(registry))
    assert "".join(json_chunks({"metrics": []})) == '{"metrics": []}'


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def without_self_timing(document: dict) -> dict:
    return {"metrics": [m for m in document["metrics"]
                        if m["name"] != "promkit_exposition_duration_seconds"]}


async def test_json_scrape_streams_the_one_shot_document_and_gzips_it():
    registry = rich_registry(600)
    app = metrics_app(registry, chunk_series=50)
    expected = json.dumps(render_json(registry))  # before the app times its first scrape
    async with client_for(app) as client:
        streamed = await client.get("/", params={"format": "json"},
                                    headers={"accept-encoding": "identity"})
        zipped = await client.get("/", params={"format": "json"},
                                  headers={"accept-encoding": "gzip"})
    assert streamed.headers["content-type"] == "application/json"
    assert "content-length" not in streamed.headers  # streamed in pieces
    assert streamed.content == expected.encode()
    assert zipped.headers["content-encoding"] == "gzip"
    assert without_self_timing(zipped.json()) == without_self_timing(json.loads(expected))


async def test_json_scrape_lets_the_loop_run_between_pieces(monkeypatch):
    registry = rich_registry(2_000)
    pieces_done = 0
    real = asgi_module.render_json_chunks

    def counting(reg, chunk_series):
        nonlocal pieces_done
        for piece in real(reg, chunk_series):
            yield piece
            pieces_done += 1

    monkeypatch.setattr(asgi_module, "render_json_chunks", counting)
    total = len(list(real(registry, 256)))
    assert total > 20
    seen: list[int] = []
    done = anyio.Event()

    async def other_request():
        while not done.is_set():
            if 0 < pieces_done < total:
                seen.append(pieces_done)
            await anyio.sleep(0)

    async with client_for(metrics_app(registry)) as client, anyio.create_task_group() as tg:
        tg.start_soon(other_request)
        response = await client.get("/", params={"format": "json"})
        done.set()
    assert response.status_code == 200
    assert len(set(seen)) > total // 2, "the event loop was blocked for the whole render"


_WRITER = """
import sys
from prometheus_client import CollectorRegistry
from promkit.instrument import MetricsRegistry
odd = %r
reg = MetricsRegistry(CollectorRegistry(), multiprocess=True)
c = reg.counter("jobs_done_total", "Jobs.", ["kind"], series_limit=1000)
h = reg.histogram("work_seconds", "Work.", ["route"], buckets=(0.1, 1.0), series_limit=1000)
g = reg.gauge("backlog", "Backlog.", ["queue"], multiprocess_mode="sum", series_limit=1000)
for i in range(300):
    o = odd[i %% len(odd)]
    c.labels(f"{o}-{i}").inc(i + int(sys.argv[1]))
    h.labels(f"/{o}/{i}").observe(0.05 * (i %% 30))
    g.labels(o + str(i)).set(i / 4)
""" % (ODD_VALUES,)


def test_multiprocess_json_in_pieces_is_the_one_shot_document(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for n in ("1", "2"):
        subprocess.run([sys.executable, "-c", _WRITER, n], env=env, timeout=60, check=True)
    document = multiprocess_json(path=str(tmp_path))
    assert sum(len(m["samples"]) for m in document["metrics"]) == 900
    one_shot = json.dumps(document)
    for chunk_series in (1, 13, 256):
        assert "".join(json_chunks(document, chunk_series)) == one_shot


async def test_multiprocess_json_scrape_is_the_one_shot_document(tmp_path, monkeypatch):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", _WRITER, "1"], env=env, timeout=60, check=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    registry = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    app = metrics_app(registry, chunk_series=16)
    expected = json.loads(json.dumps(multiprocess_json(registry)))
    async with client_for(app) as client:
        streamed = await client.get("/", params={"format": "json"},
                                    headers={"accept-encoding": "identity"})
        zipped = await client.get("/", params={"format": "json"},
                                  headers={"accept-encoding": "gzip"})
    assert "content-length" not in streamed.headers
    # This process's own files (the app's self-timing) may sit elsewhere: compare the rest.
    assert without_self_timing(streamed.json()) == without_self_timing(expected)
    assert without_self_timing(zipped.json()) == without_self_timing(expected)
