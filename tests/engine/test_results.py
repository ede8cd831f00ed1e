import json

import pytest

from tests.conftest import load_tool
from ykd.data import parse_scenario
from ykd.engine.results import compare_methods, forgetting, method_results, method_table

CLASSES = ["a", "b", "c"]
SCENARIO = parse_scenario("2-1", 3)


def _evals(final_all_ap: float):
    step0 = {"AP-a": 50.0, "AP-b": 30.0, "all/AP": 40.0, "new/AP": 40.0, "1-2/AP": 40.0}
    step1 = {"AP-a": 40.0, "AP-b": 10.0, "AP-c": 20.0, "all/AP": final_all_ap, "old/AP": 25.0}
    step1.update({"new/AP": 20.0, "1-2/AP": 25.0, "3/AP": 20.0, "AP": 99.0})
    box0 = {"AP-a": 60.0, "AP-b": 60.0, "all/AP": 60.0}
    box1 = {"AP-a": 60.0, "AP-b": 50.0, "AP-c": 10.0, "all/AP": 40.0}
    return [{"segm": step0, "bbox": box0}, {"segm": step1, "bbox": box1}]


def test_forgetting_is_the_mean_drop_of_old_classes():
    evals = _evals(25.0)
    assert forgetting(evals, SCENARIO, CLASSES, 0) == {}
    # mask: ((50 - 40) + (30 - 10)) / 2; box: ((60 - 60) + (60 - 50)) / 2
    assert forgetting(evals, SCENARIO, CLASSES, 1) == {"segm": 15.0, "bbox": 5.0}


def test_method_results_keep_group_metrics_only():
    results = method_results(
        _evals(25.0), dataset="synthetic", scenario=SCENARIO, method="ft", class_order=CLASSES
    )
    assert results["tasks"] == [[0, 1], [2]]
    last = results["steps"][1]
    assert last["segm"] == {
        "all/AP": 25.0,
        "old/AP": 25.0,
        "new/AP": 20.0,
        "1-2/AP": 25.0,
        "3/AP": 20.0,
    }
    assert json.loads(json.dumps(results)) == results
    last_row = method_table(results).splitlines()[-1]
    cells = [cell.strip() for cell in last_row.split("|")[1:-1]]
    # step, mask AP old/new/all, box AP old/new/all, mask forgetting
    assert cells == ["1", "25.0", "20.0", "25.0", "-", "-", "40.0", "15.0"]


def test_compare_methods_ratio_to_joint():
    ft = method_results(
        _evals(25.0), dataset="synthetic", scenario=SCENARIO, method="ft", class_order=CLASSES
    )
    joint = method_results(
        _evals(50.0), dataset="synthetic", scenario=SCENARIO, method="joint", class_order=CLASSES
    )
    rows = {
        line.split("|")[1].strip(): line for line in compare_methods([ft, joint]).splitlines()[4:]
    }
    assert rows["ft"].split("|")[-2].strip() == "0.50"
    assert rows["joint"].split("|")[-2].strip() == "1.00"


def test_compare_tool_refuses_mixed_scenarios(tmp_path):
    compare = load_tool("compare")
    for method, scenario in (("ft", "2-1"), ("joint", "1-1")):
        record = {"dataset": "synthetic", "scenario": scenario, "method": method, "steps": []}
        (tmp_path / method).mkdir()
        (tmp_path / method / "results.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="different scenarios"):
        compare.main([str(tmp_path), "--output", str(tmp_path / "cmp")])


def test_joint_run_at_the_last_step_only_is_compared_there():
    ft = method_results(
        _evals(25.0), dataset="synthetic", scenario=SCENARIO, method="ft", class_order=CLASSES
    )
    joint_evals = [None, _evals(50.0)[1]]
    joint = method_results(
        joint_evals, dataset="synthetic", scenario=SCENARIO, method="joint", class_order=CLASSES
    )
    assert [record["step"] for record in joint["steps"]] == [1]
    assert joint["steps"][0]["forgetting"] == {}
    table = compare_methods([ft, joint]).splitlines()
    assert table[0] == "### synthetic 2-1, last step (2 steps)"
    rows = {line.split("|")[1].strip(): line for line in table[4:]}
    assert rows["ft"].split("|")[-2].strip() == "0.50"
