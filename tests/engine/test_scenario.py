"""A whole 3-step synthetic scenario, several methods, one output tree (tools/train_net.py --all-steps)."""

import json
import os

import pytest
import torch

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts

train_net = load_tool("train_net")
METHODS = ("ft", "ilod", "mma", "dynamic_ykd")
GROUPS = {0: ("all", "new", "1-10"), 1: ("all", "old", "new", "1-10", "11-15")}
# Dynamic Y-KD also averages each incremental step's model with the previous step's.
METHOD_OPTS = {"dynamic_ykd": ["MODEL.YKD.AVERAGING.ALPHA", "0.25"]}


def _run(root, method):
    config = os.path.join(REPO_ROOT, "configs", "synthetic", f"{method}.yaml")
    argv = ["--config-file", config, "--scenario", "10-5", "--all-steps"] + instant_opts(root)
    argv += METHOD_OPTS.get(method, [])
    return train_net.main(train_net.build_parser().parse_args(argv))


@pytest.fixture(scope="module")
def scenario_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenario")
    for method in METHODS:
        _run(str(root), method)
    return root / "out" / "synthetic" / "10-5"


def _check_results_schema(results: dict, method: str):
    assert results["method"] == method and results["scenario"] == "10-5"
    assert results["tasks"] == [list(range(10)), list(range(10, 15)), list(range(15, 20))]
    assert len(results["class_order"]) == 20
    assert [r["step"] for r in results["steps"]] == [0, 1, 2]
    for record in results["steps"]:
        groups = GROUPS.get(record["step"], ("all", "old", "new", "1-10", "11-15", "16-20"))
        for iou_type in ("segm", "bbox"):
            for group in groups:
                for metric in ("AP", "AP50"):
                    value = record[iou_type][f"{group}/{metric}"]
                    assert isinstance(value, float) and 0.0 <= value <= 100.0
        assert (record["step"] == 0) == (record["forgetting"] == {})
        for value in record["forgetting"].values():
            assert -100.0 <= value <= 100.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_its_results(scenario_root, method):
    folder = scenario_root / method
    results = json.loads((folder / "results.json").read_text())
    _check_results_schema(results, method)
    for step in range(3):
        assert (folder / f"step{step}" / "model_final.pth").is_file()
    lines = (folder / "results.md").read_text().splitlines()
    header = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert header[:4] == ["step", "mask AP old", "mask AP new", "mask AP all"]
    assert [line.split("|")[1].strip() for line in lines[4:]] == ["0", "1", "2"]
    assert (folder / "plots" / "ap_per_step.png").read_bytes()[:4] == b"\x89PNG"


def test_step0_is_trained_once_for_all_methods(scenario_root):
    shared = list((scenario_root.parent / "shared_step0").iterdir())
    assert len(shared) == 1
    for method in METHODS:
        assert os.path.realpath(scenario_root / method / "step0") == os.path.realpath(shared[0])


def test_rerun_skips_finished_steps(scenario_root):
    folder = scenario_root / "dynamic_ykd"
    stamps = {s: (folder / f"step{s}" / "model_final.pth").stat().st_mtime_ns for s in range(3)}
    _run(str(scenario_root.parents[2]), "dynamic_ykd")
    for step, stamp in stamps.items():
        assert (folder / f"step{step}" / "model_final.pth").stat().st_mtime_ns == stamp


def test_dynamic_ykd_checkpoints_grow_one_module_per_step(scenario_root):
    for step in range(3):
        path = scenario_root / "dynamic_ykd" / f"step{step}" / "model_final.pth"
        meta = torch.load(path, weights_only=True)["ykd_meta"]
        assert meta["step"] == step and meta["num_modules"] == step + 1
        assert meta["num_classes_per_task"] == [10, 5, 5][: step + 1]


def _expected_average(previous: torch.Tensor, current: torch.Tensor, key: str) -> torch.Tensor:
    """0.25 * previous + 0.75 * current on the rows both have (the classifier's background row is
    its last); rows only the current step has are its own."""
    expected = current.clone()
    rows = previous.shape[0]
    if rows == current.shape[0]:
        return 0.25 * previous + 0.75 * current
    shared = (
        list(range(rows - 1)) + [-1]
        if key.endswith("cls_score.weight") or key.endswith("cls_score.bias")
        else list(range(rows))
    )
    expected[shared] = 0.25 * previous + 0.75 * current[shared]
    return expected


def test_averaging_hook_keeps_and_evaluates_an_averaged_model_per_step(scenario_root):
    folder = scenario_root / "dynamic_ykd"
    results = json.loads((folder / "results.json").read_text())
    assert "averaged" not in results["steps"][0]
    for step in (1, 2):
        load = lambda name: torch.load(folder / name, weights_only=True)["model"]  # noqa: E731
        previous = load(f"step{step - 1}/model_final.pth")
        current = load(f"step{step}/model_final.pth")
        averaged = load(f"step{step}/model_averaged.pth")
        assert averaged.keys() == current.keys()
        for key, value in averaged.items():
            if key.startswith(f"task_modules.{step}.") or key.startswith("mask_head."):
                source = key.replace(f"task_modules.{step}.", f"task_modules.{step - 1}.")
                expected = _expected_average(previous[source].float(), current[key].float(), key)
                torch.testing.assert_close(value.float(), expected, rtol=1e-6, atol=1e-7)
            else:
                assert torch.equal(value, current[key]), key
        evaluation = json.loads(
            (folder / f"step{step}" / "eval_model_averaged" / "eval.json").read_text()
        )
        assert evaluation["segm"]["all/AP"] == results["steps"][step]["averaged"]["segm"]["all/AP"]
        assert 0.0 <= evaluation["segm"]["all/AP"] <= 100.0
