"""The forgetting decomposition's table over seeds (bench/forgetting.py)."""

import pytest

from tests.conftest import load_tool

forgetting = load_tool("forgetting", folder="bench")


def _run(alone_now: float, merged_now: float) -> dict:
    task = {"task": 0, "group": "1-15", "learned": 60.0, "alone_then": 60.0}
    task.update(alone_now=alone_now, merged_now=merged_now)
    task.update(trunk_drift=60.0 - alone_now, merge_interference=alone_now - merged_now)
    return {"steps": [{"step": 1, "tasks": [task]}]}


def test_every_field_is_averaged_over_the_seeds():
    (row,) = forgetting.aggregate([_run(50.0, 45.0), _run(54.0, 47.0)])
    assert (row["step"], row["task"], row["group"]) == (1, 0, "1-15")
    assert row["alone_now"]["mean"] == 52.0 and row["merged_now"]["mean"] == 46.0
    assert row["trunk_drift"]["mean"] == 8.0 and row["merge_interference"]["mean"] == 6.0
    assert row["trunk_drift"]["std"] == pytest.approx(2.0**0.5 * 2.0)
    assert row["learned"]["std"] == 0.0
