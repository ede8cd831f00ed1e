import json

from ykd.data import parse_scenario
from ykd.engine.results import (
    compare_methods,
    forgetting,
    mask_ap_summary,
    method_results,
    method_table,
)

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


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("|")[1:-1]]


def _voc_evals():
    """A 1-1 scenario over classes a, b, c (three steps) evaluated with COCO and VOC AP."""
    step0 = {"AP-a": 50.0, "vocAP-a": 60.0, "all/AP": 50.0, "new/AP": 50.0}
    step0.update({"all/vocAP": 60.0, "new/vocAP": 60.0, "1/vocAP": 60.0})
    step1 = {"AP-a": 40.0, "vocAP-a": 45.0, "AP-b": 30.0, "vocAP-b": 35.0}
    step1.update({"all/AP": 35.0, "old/AP": 40.0, "new/AP": 30.0})
    step1.update({"all/vocAP": 40.0, "old/vocAP": 45.0, "new/vocAP": 35.0, "1/vocAP": 45.0})
    step1.update({"2/vocAP": 35.0})
    step2 = {"AP-a": 20.0, "vocAP-a": 30.0, "AP-b": 10.0, "vocAP-b": 20.0, "AP-c": 5.0}
    step2.update({"all/AP": 11.0, "old/AP": 15.0, "new/AP": 5.0, "all/vocAP": 21.0})
    step2.update({"old/vocAP": 25.0, "new/vocAP": 13.0, "1/vocAP": 30.0, "2-3/vocAP": 16.5})
    box = {"all/AP": 7.0, "all/vocAP": 8.0}
    return [{"segm": s, "bbox": box} for s in (step0, step1, step2)]


def test_voc_ap_is_the_headline_with_coco_ap_beside_it():
    scenario = parse_scenario("1-1", 3)
    results = method_results(
        _voc_evals(), dataset="voc_sbd", scenario=scenario, method="mma", class_order=CLASSES
    )
    assert results["headline"] == "vocAP"
    last = results["steps"][2]
    # VOC forgetting: ((60 - 30) + (35 - 20)) / 2; COCO: ((50 - 20) + (30 - 10)) / 2.
    assert last["voc_forgetting"]["segm"] == 22.5 and last["forgetting"]["segm"] == 25.0
    lines = method_table(results).splitlines()
    headers = _cells(lines[2])
    assert headers[:7] == ["step"] + [f"mask VOC AP {g}" for g in ("old", "new", "all")] + [
        f"mask AP {g}" for g in ("old", "new", "all")
    ]
    # The papers' groups of a multi-step scenario: step-0 classes and the classes added since.
    assert headers[-3:] == ["mask VOC AP 1", "mask VOC AP 2-t", "mask forgetting"]
    row = dict(zip(headers, _cells(lines[-1]), strict=True))
    assert (row["mask VOC AP all"], row["mask AP all"], row["box VOC AP all"]) == (
        "21.0",
        "11.0",
        "8.0",
    )
    assert (row["mask VOC AP 1"], row["mask VOC AP 2-t"]) == ("30.0", "16.5")
    assert row["mask forgetting"] == "22.5"
    step1 = dict(zip(headers, _cells(lines[-2]), strict=True))
    assert (step1["mask VOC AP 1"], step1["mask VOC AP 2-t"]) == ("45.0", "35.0")
    assert dict(zip(headers, _cells(lines[-3]), strict=True))["mask VOC AP 1"] == "-"

    table = compare_methods([results]).splitlines()
    row = dict(zip(_cells(table[2]), _cells(table[4]), strict=True))
    assert row["mask VOC AP all"] == "21.0" and row["mask AP all"] == "11.0"
    assert row["mask VOC AP 1"] == "30.0" and row["mask VOC AP 2-3"] == "16.5"
    assert row["box VOC AP all"] == "8.0" and row["mask forgetting"] == "22.5"


def test_coco_ap_stays_the_headline_without_voc_ap():
    results = method_results(
        _evals(25.0), dataset="synthetic", scenario=SCENARIO, method="ft", class_order=CLASSES
    )
    assert results["headline"] == "AP" and "voc_forgetting" not in results["steps"][1]
    headers = _cells(compare_methods([results]).splitlines()[2])
    assert headers == [
        "method", "mask AP old", "mask AP new", "mask AP all", "box AP all", "mask forgetting",
        "all / joint",
    ]  # fmt: skip


def test_mask_ap_summary_of_coco_and_voc_ap():
    evaluation = {"segm": {"old/AP": 0.0, "new/AP": 0.0, "all/AP": 0.0, "all/vocAP": 1.25}}
    assert mask_ap_summary(evaluation) == "old 0.0, new 0.0, all 0.0; VOC AP all 1.2"
    assert mask_ap_summary({"segm": {}}) == ""
