"""The forgetting decomposition of a finished Dynamic Y-KD run (instant schedule, 3 steps)."""

import math
import os

import pytest

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts
from ykd.engine.decomposition import decompose_forgetting, task_group_ap

train_net = load_tool("train_net")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "dynamic_ykd.yaml")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("decomposition"))
    opts = instant_opts(root)
    argv = ["--config-file", CONFIG, "--scenario", "10-5", "--all-steps"] + opts
    train_net.main(train_net.build_parser().parse_args(argv))
    return opts


def test_every_old_task_of_every_step_is_decomposed(finished_run):
    result = decompose_forgetting(CONFIG, finished_run, "10-5")
    assert result["method"] == "dynamic_ykd"
    assert [s["step"] for s in result["steps"]] == [1, 2]
    assert [[t["task"] for t in s["tasks"]] for s in result["steps"]] == [[0], [0, 1]]
    assert [t["group"] for t in result["steps"][1]["tasks"]] == ["1-10", "11-15"]
    for step in result["steps"]:
        for task in step["tasks"]:
            for key in ("learned", "alone_then", "alone_now", "merged_now"):
                assert math.isnan(task[key]) or 0.0 <= task[key] <= 100.0
            if not math.isnan(task["alone_now"]):
                assert task["trunk_drift"] == pytest.approx(task["alone_then"] - task["alone_now"])
                assert task["merge_interference"] == pytest.approx(
                    task["alone_now"] - task["merged_now"]
                )
    # Module 0 at step 0 is the step-0 model itself.
    first = result["steps"][0]["tasks"][0]
    assert first["alone_then"] == first["learned"] or math.isnan(first["learned"])


def test_module_alone_evaluations_are_cached(finished_run):
    root = finished_run[-1]  # instant_opts ends with CONTINUAL.OUTPUT_ROOT <root>
    evals = os.path.join(root, "synthetic", "10-5", "dynamic_ykd", "step2", "decomposition")
    assert sorted(os.listdir(evals)) == ["module0", "module1"]
    stamp = os.stat(os.path.join(evals, "module0", "eval.json")).st_mtime_ns
    decompose_forgetting(CONFIG, finished_run, "10-5")
    assert os.stat(os.path.join(evals, "module0", "eval.json")).st_mtime_ns == stamp


def test_task_group_ap_is_the_mean_over_the_task_classes():
    evaluation = {"segm": {"AP-a": 10.0, "AP-b": 30.0, "AP-c": None}}
    assert task_group_ap(evaluation, ["a", "b", "c"], [0, 1]) == 20.0
    assert task_group_ap(evaluation, ["a", "b", "c"], [1, 2]) == 30.0
    assert math.isnan(task_group_ap(evaluation, ["a", "b", "c"], [2]))
