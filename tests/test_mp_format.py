"""promkit reads and writes prometheus-client's multiprocess files exactly.

The file format is prometheus-client's internal (``mmap_dict.py``); promkit
reads it with ``struct`` directly (exporters/_pc_mmap_format.py). These tests
fail if the installed prometheus-client writes something else: every file
here is written by prometheus-client's own code and read back both ways, and
the files promkit writes (the archives) are read by prometheus-client.
They run on the floors too (prometheus-client 0.20).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from prometheus_client import values as pc_values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from promkit.exporters._pc_mmap_format import (
    CorruptFileError,
    encode_file,
    parse_key,
    parse_layout,
    read_used,
    used_bytes,
)


def read_back(path: Path) -> list[tuple[str, float, float]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = read_used(fd, 0)
    finally:
        os.close(fd)
    layout = parse_layout(data, used_bytes(data))
    raw = layout.values_and_stamps.unpack_from(data)
    return [(key, raw[2 * i], raw[2 * i + 1]) for i, key in enumerate(layout.keys)]


def prometheus_client_reads(path: Path) -> list[tuple[str, float, float]]:
    return [(k, v, t) for k, v, t, *_ in MmapedDict.read_all_values_from_file(str(path))]


def test_values_written_by_prometheus_clients_value_class_read_back_exactly(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    value_class = pc_values.MultiProcessValue(process_identifier=lambda: "fmt")
    expected: dict[str, float] = {}
    # Keys of every padding remainder, non-ASCII labels, and enough of them to pass 64 KiB.
    for i in range(700):
        labels = ("route", "le")
        label_values = (f"/é/{'x' * (i % 9)}/{i}", "+Inf" if i % 2 else "0.25")
        v = value_class("histogram", "req_seconds", "req_seconds_bucket", labels, label_values,
                        'Help with "quotes" and \\ and ü')
        v.inc(i * 0.5)
        v.inc(1.25)
        expected[mmap_key("req_seconds", "req_seconds_bucket", labels, label_values,
                          'Help with "quotes" and \\ and ü')] = i * 0.5 + 1.25
    gauge = value_class("gauge", "temp", "temp", (), (), "T.", multiprocess_mode="mostrecent")
    gauge.set(-3.5, timestamp=1234.5)
    path = tmp_path / "histogram_fmt.db"
    assert path.stat().st_size > 1 << 16  # the second read is exercised
    got = read_back(path)
    assert got == prometheus_client_reads(path)
    assert {k: v for k, v, _ in got} == expected
    (mostrecent,) = read_back(tmp_path / "gauge_mostrecent_fmt.db")
    assert mostrecent[1:] == (-3.5, 1234.5)
    assert parse_key(mostrecent[0]) == ("temp", "temp", {}, "T.")


def test_a_grown_file_parses_from_where_the_last_walk_stopped(tmp_path):
    path = tmp_path / "counter_1.db"
    d = MmapedDict(str(path))
    try:
        keys = [mmap_key("c", "c_total", ["k"], [str(i)], "C.") for i in range(50)]
        for k in keys[:20]:
            d.write_value(k, 1.0, 0.0)
        first = path.read_bytes()
        base = parse_layout(first, used_bytes(first))
        for k in keys[20:]:
            d.write_value(k, 2.0, 0.0)
        d.write_value(keys[0], 7.0, 0.0)  # in place: the layout is unchanged
        second = path.read_bytes()
    finally:
        d.close()
    grown = parse_layout(second, used_bytes(second), base)
    whole = parse_layout(second, used_bytes(second))
    assert grown.keys == whole.keys == tuple(keys)
    assert grown.values.unpack_from(second) == whole.values.unpack_from(second)
    assert grown.values.unpack_from(second)[:2] == (7.0, 1.0)
    assert grown.values_and_stamps.unpack_from(second)[:4] == (7.0, 0.0, 1.0, 0.0)
    assert whole.matches(second) and base.matches(second)  # same entries at the start
    other = bytearray(second)
    other[20] ^= 1  # one byte of the first key differs
    assert not base.matches(bytes(other))


def test_prometheus_client_reads_and_continues_the_files_promkit_writes(tmp_path):
    entries = [(mmap_key("c", "c_total", ["k"], [v], "C."), float(i) + 0.5, 0.0)
               for i, v in enumerate(["a", "bb", "ccc", "dddd", "é"])]
    path = tmp_path / "counter_archive.db"
    path.write_bytes(encode_file(entries, b"\0trailer after the used bytes"))
    assert prometheus_client_reads(path) == entries
    assert read_back(path) == entries
    # prometheus-client's writer opens it and appends after the entries.
    d = MmapedDict(str(path))
    try:
        assert d.read_value(entries[2][0]) == (2.5, 0.0)
        d.write_value(mmap_key("c", "c_total", ["k"], ["new"], "C."), 9.0, 0.0)
    finally:
        d.close()
    assert prometheus_client_reads(path)[-1][1] == 9.0


def _open_read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_used(fd, 0)
    finally:
        os.close(fd)


def test_damaged_files_raise_corrupt_file_error_naming_the_problem(tmp_path):
    good = encode_file([(json.dumps(["c", "c_total", {}, "C."]), 1.0, 0.0)])
    cases = {
        "truncated": (good[:-10], "bytes used but the file has"),
        "tiny_header": (struct.pack("i", 4) + b"\0" * 60, "less than the header"),
        "overrun": (struct.pack("i", 64) + b"\0" * 4 + struct.pack("i", 200) + b"x" * 52,
                    "runs past"),
        "not_utf8": (struct.pack("i", 40) + b"\0" * 4 + struct.pack("i", 4) + b"\xff\xfe\xfd\xfc"
                     + b"\0" * 24, "not UTF-8"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"counter_{name}.db"
        path.write_bytes(data)
        with pytest.raises(CorruptFileError, match=message):
            raw = _open_read(path)
            parse_layout(raw, used_bytes(raw))
    with pytest.raises(CorruptFileError, match="JSON list"):
        parse_key("{not json")
    # Still being created: nothing to read, no error.
    for data in (b"", b"\0\0", b"\0" * 64):
        path = tmp_path / "counter_new.db"
        path.write_bytes(data)
        assert _open_read(path) == b""
