"""ykd.checkpoint.sweep: the α grid, the averaged checkpoint of step t for α, the sweep table."""

import math
import os

import pytest
import torch

from ykd.checkpoint.sweep import (
    alpha_label,
    parse_alpha_grid,
    plot_sweep,
    step_average,
    sweep_record,
    sweep_table,
)


@pytest.mark.parametrize(
    "grid, expected",
    [
        ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("0:1:0.1", [i / 10 for i in range(11)]),
        ("0.2:0.8:0.3", [0.2, 0.5, 0.8]),
        (" 0 : 1 : 0.5 ", [0.0, 0.5, 1.0]),
        ("0.5", [0.5]),
        ("0.3:0.3:0", [0.3]),
    ],
)
def test_grid_has_exact_decimal_steps_both_ends_included(grid, expected):
    assert parse_alpha_grid(grid) == expected


@pytest.mark.parametrize(
    "grid, message",
    [
        ("0:1", "START:STOP:STEP"),
        ("0:1:0.25:2", "START:STOP:STEP"),
        ("0:one:0.25", "not a finite number"),
        ("0:1:nan", "not a finite number"),
        ("", "not a finite number"),
        ("-0.5:1:0.5", "outside [0, 1]"),
        ("0:1.5:0.5", "outside [0, 1]"),
        ("1:0:0.25", "below START"),
        ("0:1:0", "must be > 0"),
        ("0:1:-0.25", "must be > 0"),
        ("0:1:0.3", "does not divide"),
        ("0:1:0.00001", "more than"),
    ],
)
def test_bad_grids_are_clear_errors(grid, message):
    with pytest.raises(ValueError, match=r"α grid .*" + message.replace("[", r"\[")):
        parse_alpha_grid(grid)


def test_alpha_labels():
    assert [alpha_label(a) for a in parse_alpha_grid("0:1:0.25")] == [
        "0",
        "0.25",
        "0.5",
        "0.75",
        "1",
    ]


def _checkpoints(tmp_path):
    """Step-1 and step-2 checkpoints of a tiny Y-KD-like model: 2 then 3 classes (grown rows)."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    step1 = {
        "backbone.conv.weight": rand(4, 3),
        "task_modules.0.fc.weight": rand(3, 4),
        "task_modules.1.fc.weight": rand(3, 4),
        "task_modules.1.norm.num_batches_tracked": torch.tensor(7),
        "mask_head.conv.weight": rand(4, 4),
        "mask_head.predictor.weight": rand(2, 4, 1, 1),
    }
    step2 = {
        "backbone.conv.weight": rand(4, 3),
        "task_modules.0.fc.weight": rand(3, 4),
        "task_modules.1.fc.weight": rand(3, 4),
        "task_modules.2.fc.weight": rand(3, 4),
        "task_modules.2.norm.num_batches_tracked": torch.tensor(3),
        "mask_head.conv.weight": rand(4, 4),
        "mask_head.predictor.weight": rand(3, 4, 1, 1),
    }
    paths = []
    for name, model in (("step1", step1), ("step2", step2)):
        paths.append(os.fspath(tmp_path / f"{name}.pth"))
        torch.save({"model": model}, paths[-1])
    return paths, step1, step2


def test_alpha_0_is_step_t_and_alpha_1_puts_back_the_previous_module(tmp_path):
    (previous, current), step1, step2 = _checkpoints(tmp_path)
    at_0 = step_average(previous, current, step=2, alpha=0.0)["model"]
    at_1 = step_average(previous, current, step=2, alpha=1.0)["model"]
    assert list(at_0) == list(step2) == list(at_1)
    for key, value in step2.items():
        assert torch.equal(at_0[key], value), key
    expected = dict(step2)  # α = 1: module 2 <- step-1 module 1, mask head <- step 1's
    expected["task_modules.2.fc.weight"] = step1["task_modules.1.fc.weight"]
    expected["mask_head.conv.weight"] = step1["mask_head.conv.weight"]
    grown = step2["mask_head.predictor.weight"].clone()
    grown[:2] = step1["mask_head.predictor.weight"]  # old-class rows; the new row stays step 2's
    expected["mask_head.predictor.weight"] = grown
    for key, value in expected.items():
        assert torch.equal(at_1[key], value), key


def test_alpha_interpolates_module_t_and_mask_head_only(tmp_path):
    (previous, current), step1, step2 = _checkpoints(tmp_path)
    checkpoint = step_average(previous, current, step=2, alpha=0.25)
    model = checkpoint["model"]
    expected = 0.25 * step1["task_modules.1.fc.weight"] + 0.75 * step2["task_modules.2.fc.weight"]
    torch.testing.assert_close(model["task_modules.2.fc.weight"], expected)
    for key in ("backbone.conv.weight", "task_modules.1.fc.weight", "task_modules.0.fc.weight"):
        assert torch.equal(model[key], step2[key]), key
    assert checkpoint["averaging"]["rename"] == {"task_modules.1.": "task_modules.2."}
    with pytest.raises(ValueError, match="step >= 1"):
        step_average(previous, current, step=0, alpha=0.5)


def test_official_mode_interpolates_every_same_shape_tensor_outside_the_trunk(tmp_path):
    """The authors' averaging by hand: w·step 1 + (1-w)·step 2 where both have the tensor."""
    (previous, current), step1, step2 = _checkpoints(tmp_path)
    model = step_average(previous, current, step=2, alpha=0.25, mode="official")["model"]
    assert list(model) == list(step2)
    for key, source in (
        ("task_modules.2.fc.weight", "task_modules.1.fc.weight"),  # the renamed student
        ("task_modules.0.fc.weight", "task_modules.0.fc.weight"),
        ("mask_head.conv.weight", "mask_head.conv.weight"),
    ):
        torch.testing.assert_close(model[key], 0.25 * step1[source] + 0.75 * step2[key])
    # The trunk, the grown mask predictor, a module the renamed step 1 lacks, a counter: step 2's.
    for key in (
        "backbone.conv.weight",
        "mask_head.predictor.weight",
        "task_modules.1.fc.weight",
        "task_modules.2.norm.num_batches_tracked",
    ):
        assert torch.equal(model[key], step2[key]), key
    with pytest.raises(ValueError, match="MODEL.YKD.AVERAGING.MODE must be one of"):
        step_average(previous, current, step=2, alpha=0.25, mode="mean")


def _evaluation(old, new, all_):
    return {"segm": {"old/AP": old, "new/AP": new, "all/AP": all_}, "bbox": {"all/AP": 1.0}}


def test_table_and_plot_mark_the_alpha_of_best_all_class_ap(tmp_path):
    alphas = [0.0, 0.5, 1.0]
    evaluations = [
        _evaluation(10, 30, 15),
        _evaluation(20, 25, 21.5),
        _evaluation(30, math.nan, 20),
    ]
    record = sweep_record(alphas, evaluations, ["a", "b", "c"], scenario="15-5", step=1)
    assert record["best_alpha"] == 0.5
    assert record["rows"][2]["segm"]["new/AP"] is None
    assert record["rows"][0]["bbox"] == {"old/AP": None, "new/AP": None, "all/AP": 1.0}
    lines = sweep_table(record).splitlines()
    marked = [line for line in lines if line.rstrip(" |").endswith("*")]
    assert len(marked) == 1 and marked[0].startswith("| 0.5 ") and "21.5" in marked[0]
    assert any(line.startswith("| 1 ") and "| -" in line for line in lines)
    plot_sweep(record, os.fspath(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_voc_ap_ranks_the_alphas_where_it_is_evaluated(tmp_path):
    def evaluation(coco_all, voc_all):
        segm = {"old/AP": 1.0, "new/AP": 2.0, "all/AP": coco_all}
        segm.update({"old/vocAP": 3.0, "new/vocAP": 4.0, "all/vocAP": voc_all})
        return {"segm": segm, "bbox": {"all/AP": 1.0, "all/vocAP": 2.0}}

    # COCO AP prefers α = 0, the VOC AP α = 0.5: the VOC AP decides.
    record = sweep_record([0.0, 0.5], [evaluation(20, 30), evaluation(10, 40)], ["a", "b"])
    assert record["headline"] == "vocAP" and record["best_alpha"] == 0.5
    assert (
        record["rows"][1]["segm"]["all/AP"] == 10 and record["rows"][1]["segm"]["all/vocAP"] == 40
    )
    table = sweep_table(record)
    assert "mask VOC AP all" in table and "box VOC AP all" in table
    marked = [line for line in table.splitlines() if line.rstrip(" |").endswith("*")]
    assert len(marked) == 1 and marked[0].startswith("| 0.5 ") and "40.0" in marked[0]
    plot_sweep(record, os.fspath(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
