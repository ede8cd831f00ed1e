"""bench/kill_soak.py: the categories of the places a kill lands, the draw, and a 3-kill soak."""

import random

from tests.conftest import load_tool

kill_soak = load_tool("kill_soak", folder="bench")


def test_places_fall_in_their_categories():
    expected = {
        "train:step1:iter2": "training",
        "write:step1/model_0000001.pth": "checkpoint save",
        "write:step1/last_checkpoint@model_0000001.pth": "checkpoint save",
        "write:step0/model_final.pth": "checkpoint save",
        "eval:step1:image3": "evaluation",
        "write:step1/eval.json": "evaluation",
        "average:step2": "averaging hook",
        "write:step2/model_averaged.pth": "averaging hook",
        "eval:step2/eval_model_averaged:coco": "averaging hook",
        "write:step2/eval_model_averaged/eval.json": "averaging hook",
        "write:results.json": "result/plot write",
        "write:../plots/methods.png": "result/plot write",
        "write:step1/predictions.png": "result/plot write",
        "transition:step2": "step transition",
        "write:step2/config.yaml": "step transition",
    }
    assert {site: kill_soak.category(site) for site in expected} == expected


def test_points_are_distinct_ordered_and_cover_every_category():
    trace = [f"train:step0:iter{i}" for i in range(30)] + [
        "write:step0/model_final.pth",
        "eval:step0:image0",
        "average:step1",
        "write:results.json",
        "transition:step1",
    ]
    points = kill_soak.draw_points(trace, 8, random.Random(1))
    sites = [point["site"] for point in points]
    assert len(set(sites)) == 8
    assert sorted(sites, key=trace.index) == sites
    assert {kill_soak.category(site) for site in sites} == set(kill_soak.CATEGORIES)
    for point in points:
        if point["delay"]:
            assert point["site"].startswith(("train:", "eval:")) and 0 < point["delay"] <= 0.3


def test_three_kills_leave_every_artefact_identical(tmp_path):
    """A 2-step scenario killed at a training iteration, a checkpoint save and an evaluation."""
    record = kill_soak.soak(str(tmp_path), "15-5", kills=3, seed=0, timeout=600)
    assert record["kills"] == 3, record["landings"]
    drawn = {kill_soak.category(entry["point"]["site"]) for entry in record["landings"]}
    assert drawn == {"training", "checkpoint save", "evaluation"}
    assert record["artefacts"] and set(record["artefacts"].values()) == {"IDENTICAL"}, record
    assert record["leftover_temporary_files"] == []
