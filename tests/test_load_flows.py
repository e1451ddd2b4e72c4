"""promkit load's flows: definitions validated with the flow and request named, flow files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promkit.tools.loadgen import DEMO_FLOWS, FlowError, load_flows, parse_flows


def test_bad_until() -> None:
    for raw, message in (({"until": "done"}, "until"), ({"until": {"s": []}}, "until"),
                         ({"poll_seconds": -1}, "poll_seconds"), ({"max_polls": 0}, "max_polls")):
        with pytest.raises(FlowError, match=message):
            parse_flows([{"name": "x", "requests": [{"path": "/", **raw}]}])


@pytest.mark.parametrize("data, message", [
    ([], "non-empty list"),
    ([{"name": "x", "requests": []}], "non-empty list"),
    ([{"name": "x", "requests": [{"path": "nope"}]}], "starting with '/'"),
    ([{"name": "x", "requests": [{"method": "BREW", "path": "/"}]}], "BREW"),
    ([{"name": "x", "weight": -1, "requests": [{"path": "/"}]}], "weight"),
    ([{"name": "x", "requests": [{"path": "/", "expect": [999]}]}], "expect"),
    ([{"name": "x", "requests": [{"path": "/", "bogus": 1}]}], "bogus"),
    ([{"name": "x", "weight": 0, "requests": [{"path": "/"}]}], "weight 0"),
])
def test_bad_flows(data: Any, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        parse_flows(data)


def test_flow_files(tmp_path: Path) -> None:
    assert load_flows("demo") == DEMO_FLOWS
    j = tmp_path / "f.json"
    j.write_text(json.dumps({"flows": [{"name": "a", "requests": [{"path": "/a"}]}]}))
    assert load_flows(str(j))[0].requests[0].path == "/a"
    y = tmp_path / "f.yaml"
    y.write_text("flows:\n  - name: b\n    weight: 2\n    requests:\n      - {method: POST, "
                 "path: /b, json: {x: 1}}\n")
    flow = load_flows(str(y))[0]
    assert (flow.name, flow.weight, flow.requests[0].json) == ("b", 2.0, {"x": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(FlowError, match="does not parse"):
        load_flows(str(bad))
    with pytest.raises(FlowError, match="cannot read"):
        load_flows(str(tmp_path / "missing.json"))
