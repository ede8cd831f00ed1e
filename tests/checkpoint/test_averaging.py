"""Checkpoint averaging: expected values are written out by hand (exactly representable numbers)."""

import math
import os

import pytest
import torch

from ykd.checkpoint.averaging import (
    OFFICIAL_OPTIONS,
    average_checkpoint_files,
    average_checkpoints,
    load_checkpoint_file,
    rename_prefixes,
)

BOX = "task_modules.1.roi_heads.box_predictor."
MASK = "mask_head.head.predictor."
BITS = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def _t(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def _rows(first: int, count: int, width: int = 2) -> torch.Tensor:
    """``count`` rows; row i is filled with the value 4·(first + i) (exact in every float dtype)."""
    return 4.0 * torch.arange(first, first + count, dtype=torch.float32)[:, None].expand(-1, width)


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        a, b = a.view(BITS[a.dtype]), b.view(BITS[b.dtype])
    return torch.equal(a, b)


def _mixed_pair():
    first = {
        "backbone.conv.weight": _t([[0.0, 4.0], [8.0, -4.0]]),
        "task_modules.0.half": _t([1.0, -2.0, 8.0], torch.float16),
        "task_modules.0.brain": _t([0.5, 4.0], torch.bfloat16),
        "task_modules.0.double": _t([0.1, -3.0], torch.float64),
        "task_modules.0.norm.num_batches_tracked": _t(7, torch.int64),
        "mask_head.weight": _t([4.0, 4.0], torch.float16),
    }
    second = {
        "backbone.conv.weight": _t([[4.0, 0.0], [-8.0, 4.0]]),
        "task_modules.0.half": _t([5.0, 2.0, 0.0], torch.float16),
        "task_modules.0.brain": _t([2.5, -4.0], torch.bfloat16),
        "task_modules.0.double": _t([0.2, 1.0], torch.float64),
        "task_modules.0.norm.num_batches_tracked": _t(12, torch.int64),
        "mask_head.weight": _t([0.0, 8.0], torch.float32),
    }
    return first, second


def test_mixed_dtypes_match_hand_computed_average():
    first, second = _mixed_pair()
    result = average_checkpoints([first, second], [0.25, 0.75])
    expected = {
        "backbone.conv.weight": _t([[3.0, 1.0], [-4.0, 2.0]]),
        "task_modules.0.half": _t([4.0, 1.0, 2.0], torch.float16),
        "task_modules.0.brain": _t([2.0, -2.0], torch.bfloat16),
        "task_modules.0.double": _t([0.25 * 0.1 + 0.75 * 0.2, 0.25 * -3.0 + 0.75], torch.float64),
        "task_modules.0.norm.num_batches_tracked": _t(12, torch.int64),
        "mask_head.weight": _t([1.0, 7.0], torch.float32),
    }
    assert list(result) == list(second)
    for key, value in expected.items():
        assert result[key].dtype == value.dtype, key
        assert torch.allclose(result[key], value, rtol=0, atol=1e-15), key


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_0_and_1_reproduce_the_inputs_bitwise(alpha):
    generator = torch.Generator().manual_seed(0)
    special = [-0.0, math.inf, -math.inf, math.nan, 1e-30, 3.0e4]
    first, second = {}, {}
    for dtype in BITS:
        for state in (first, second):
            values = torch.randn(4, 3, generator=generator)
            state[f"m.{dtype}"] = torch.cat([values.flatten(), torch.tensor(special)]).to(dtype)
    for state in (first, second):
        state["m.num_batches_tracked"] = _t(5, torch.int64)
    result = average_checkpoints([first, second], [alpha, 1.0 - alpha])
    source = first if alpha == 1.0 else second
    for key in source:
        assert _bitwise_equal(result[key], source[key]), key


def _step_pair(class_agnostic_box: bool = False):
    """Step 0 (3 classes) and step 1 (5 classes) predictors, rows tagged 4·i."""
    box_rows = (4, 4) if class_agnostic_box else (12, 20)
    previous = {
        BOX + "cls_score.weight": _rows(0, 4),
        BOX + "cls_score.bias": _rows(0, 4, width=1)[:, 0],
        BOX + "bbox_pred.weight": _rows(0, box_rows[0]),
        MASK + "weight": _rows(0, 3)[:, :, None, None],
        MASK + "bias": _rows(0, 3, width=1)[:, 0],
    }
    target = {
        BOX + "cls_score.weight": _rows(100, 6),
        BOX + "cls_score.bias": _rows(100, 6, width=1)[:, 0],
        BOX + "bbox_pred.weight": _rows(100, box_rows[1]),
        MASK + "weight": _rows(100, 5)[:, :, None, None],
        MASK + "bias": _rows(100, 5, width=1)[:, 0],
    }
    return previous, target


def test_grown_rows_background_last_for_cls_score_old_rows_first_otherwise():
    previous, target = _step_pair()
    result = average_checkpoints([previous, target], [0.25, 0.75])
    # old class i: 0.25·4i + 0.75·4(100+i) = 4i + 300; new rows: the target's; background
    # (last row of both): 0.25·4·3 + 0.75·4·105 = 318.
    cls = torch.tensor([300.0, 304.0, 308.0] + [412.0, 416.0] + [318.0])
    assert torch.equal(result[BOX + "cls_score.weight"], cls[:, None].expand(-1, 2))
    assert torch.equal(result[BOX + "cls_score.bias"], cls)
    box = torch.cat([4.0 * torch.arange(12) + 300.0, 4.0 * torch.arange(112, 120)])
    assert torch.equal(result[BOX + "bbox_pred.weight"], box[:, None].expand(-1, 2))
    mask = torch.tensor([300.0, 304.0, 308.0, 412.0, 416.0])
    assert torch.equal(result[MASK + "weight"], mask[:, None, None, None].expand(-1, 2, 1, 1))
    assert torch.equal(result[MASK + "bias"], mask)


def test_class_agnostic_box_regressor_is_averaged_whole():
    previous, target = _step_pair(class_agnostic_box=True)
    result = average_checkpoints([previous, target], [0.5, 0.5])
    box = torch.tensor([200.0, 204.0, 208.0, 212.0])
    assert torch.equal(result[BOX + "bbox_pred.weight"], box[:, None].expand(-1, 2))


def test_grown_rows_at_the_extreme_weights():
    previous, target = _step_pair()
    result = average_checkpoints([previous, target], [1.0, 0.0])
    cls = torch.tensor([0.0, 4.0, 8.0, 412.0, 416.0, 12.0])
    assert torch.equal(result[BOX + "cls_score.bias"], cls)
    result = average_checkpoints([previous, target], [0.0, 1.0])
    assert all(_bitwise_equal(result[k], target[k]) for k in target)


def test_skip_keeps_the_targets_class_dependent_tensors():
    previous, target = _step_pair()
    previous["roi_heads.fc.weight"], target["roi_heads.fc.weight"] = _t([0.0]), _t([4.0])
    result = average_checkpoints([previous, target], [0.5, 0.5], class_rows="skip")
    assert all(torch.equal(result[k], target[k]) for k in target if k != "roi_heads.fc.weight")
    assert torch.equal(result["roi_heads.fc.weight"], _t([2.0]))


def test_include_exclude_average_only_selected_keys_others_from_target():
    first, second = _mixed_pair()
    second["task_modules.1.new"] = _t([9.0])
    result = average_checkpoints(
        [first, second], [0.5, 0.5], include=r"^(task_modules\.0|backbone)\.", exclude=r"brain"
    )
    assert torch.equal(result["backbone.conv.weight"], _t([[2.0, 2.0], [0.0, 0.0]]))
    assert torch.equal(result["task_modules.0.half"], _t([3.0, 0.0, 4.0], torch.float16))
    for kept in ("task_modules.0.brain", "mask_head.weight", "task_modules.1.new"):
        assert torch.equal(result[kept], second[kept]) and result[kept].dtype == second[kept].dtype
    result = average_checkpoints([first, second], [0.5, 0.5], exclude=r"^(backbone|task_modules)\.")
    assert torch.equal(result["backbone.conv.weight"], second["backbone.conv.weight"])
    assert torch.equal(result["mask_head.weight"], _t([2.0, 6.0]))


def test_result_does_not_alias_the_inputs():
    first, second = _mixed_pair()
    result = average_checkpoints([first, second], [0.0, 1.0], exclude="^backbone")
    for value in result.values():
        value.zero_()
    assert torch.equal(second["backbone.conv.weight"], _t([[4.0, 0.0], [-8.0, 4.0]]))
    assert torch.equal(second["task_modules.0.half"], _t([5.0, 2.0, 0.0], torch.float16))


@pytest.mark.parametrize("missing_in", [0, 1])
def test_key_mismatch_names_the_key_and_both_inputs(missing_in):
    states = list(_mixed_pair())
    del states[missing_in]["task_modules.0.double"]
    with pytest.raises(ValueError, match=r"'task_modules\.0\.double' is in (A|B) but not in (A|B)"):
        average_checkpoints(states, [0.5, 0.5], names=["A", "B"])
    with pytest.raises(ValueError, match="input 1 \\(target\\)"):
        average_checkpoints(states, [0.5, 0.5])
    assert average_checkpoints(states, [0.5, 0.5], exclude="double")


@pytest.mark.parametrize(
    "shape, message",
    [((3, 3), "only dim 0"), ((2,), "only dim 0"), ((2, 2, 1), "only dim 0"), ((5, 2), "latest")],
)
def test_shape_mismatch_is_a_clear_error(shape, message):
    first, second = {"w": torch.zeros(shape)}, {"w": torch.zeros(3, 2)}
    with pytest.raises(ValueError, match=rf"'w' has .* in A but .* in B\b.*{message}"):
        average_checkpoints([first, second], [0.5, 0.5], names=["A", "B"])


def test_larger_input_than_target_is_fine_when_skipped():
    first, second = {"w": torch.zeros(5, 2)}, {"w": torch.ones(3, 2)}
    result = average_checkpoints([first, second], [0.5, 0.5], class_rows="skip")
    assert torch.equal(result["w"], torch.ones(3, 2))


@pytest.mark.parametrize(
    "weights, message",
    [
        ([0.5, 0.6], "sum to 1.1, not 1 .*normalize"),
        ([0.5], "1 weights given for 2"),
        ([1.5, -0.5], ">= 0"),
        ([math.nan, 1.0], "finite"),
    ],
)
def test_bad_weights_are_a_clear_error(weights, message):
    with pytest.raises(ValueError, match=message):
        average_checkpoints(list(_mixed_pair()), weights)


def test_normalize_rescales_the_weights():
    first, second = _mixed_pair()
    result = average_checkpoints([first, second], [1, 3], normalize=True)
    assert torch.equal(result["backbone.conv.weight"], _t([[3.0, 1.0], [-4.0, 2.0]]))
    with pytest.raises(ValueError, match="sum to 0"):
        average_checkpoints([first, second], [0, 0], normalize=True)


def test_other_errors():
    first, second = _mixed_pair()
    with pytest.raises(ValueError, match="class_rows"):
        average_checkpoints([first, second], [0.5, 0.5], class_rows="old")
    with pytest.raises(ValueError, match="Invalid include regex"):
        average_checkpoints([first, second], [0.5, 0.5], include="(")


def test_non_float_target_is_copied_float_target_needs_float_inputs():
    integer, real = {"n": _t([1, 2], torch.int64)}, {"n": _t([1.0, 2.0])}
    result = average_checkpoints([real, integer], [0.5, 0.5])
    assert torch.equal(result["n"], integer["n"]) and result["n"].dtype == torch.int64
    with pytest.raises(TypeError, match="'n' is torch.int64 in input 0"):
        average_checkpoints([integer, real], [0.5, 0.5])


def test_rename_prefixes():
    state = {"task_modules.0.a": _t([1.0]), "task_modules.1.a": _t([2.0]), "mask_head.b": _t([3.0])}
    renamed = rename_prefixes(state, {"task_modules.1.": "task_modules.2."})
    assert list(renamed) == ["task_modules.0.a", "task_modules.2.a", "mask_head.b"]
    with pytest.raises(ValueError, match="collides"):
        rename_prefixes(state, {"task_modules.1.": "task_modules.0."})


class _Payload:
    """Unpickling calls ``open(marker, "w")``: a file appears if the pickle is executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_checkpoint_file_reads_checkpoints_and_bare_state_dicts(tmp_path):
    torch.save({"model": {"w": _t([1.0])}, "iteration": 3}, tmp_path / "full.pth")
    torch.save({"w": _t([2.0])}, tmp_path / "bare.pth")
    assert load_checkpoint_file(tmp_path / "full.pth")["iteration"] == 3
    assert torch.equal(load_checkpoint_file(tmp_path / "bare.pth")["model"]["w"], _t([2.0]))


def test_load_checkpoint_file_refuses_a_malicious_pickle(tmp_path):
    torch.save({"model": {"w": _t([1.0])}, "x": _Payload(tmp_path / "ran")}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="Refused to load .*evil.pth"):
        load_checkpoint_file(tmp_path / "evil.pth")
    assert not (tmp_path / "ran").exists()
    torch.save({"x": _Payload(tmp_path / "control")}, tmp_path / "control.pth")
    torch.load(tmp_path / "control.pth", weights_only=False)  # the payload is live
    assert (tmp_path / "control").exists()


def test_load_checkpoint_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint_file(tmp_path / "nothing.pth")
    torch.save({"model": {"w": torch.zeros(100)}}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "empty.pth").write_bytes(b"")
    for name in ("cut.pth", "text.pth", "empty.pth"):
        with pytest.raises(ValueError, match=f"(Cannot read|Refused to load) .*{name}"):
            load_checkpoint_file(tmp_path / name)
    for name, obj in (("list.pth", [1, 2]), ("meta.pth", {"model": {"w": "x"}, "iteration": 1})):
        torch.save(obj, tmp_path / name)
        with pytest.raises(ValueError, match=f"{name} is not a model checkpoint"):
            load_checkpoint_file(tmp_path / name)


def _meta(step, scenario="3-2", names=("a", "b", "c", "d", "e")):
    per_task = [3, 2][: step + 1]
    return {
        "scenario": scenario,
        "step": step,
        "class_names": list(names[: sum(per_task)]),
        "num_modules": step + 1,
        "num_classes_per_task": per_task,
    }


def _save_steps(tmp_path, meta0=None, meta1=None):
    """Step-0 / step-1 Y-KD-like checkpoints: module 0 (3 classes), module 1 (5 classes)."""
    previous, target = _step_pair()
    step0 = {k.replace("task_modules.1.", "task_modules.0."): v for k, v in previous.items()}
    step1 = {**step0, **target}
    step0["backbone.w"], step1["backbone.w"] = _t([0.0]), _t([8.0])
    paths = [os.fspath(tmp_path / "step0.pth"), os.fspath(tmp_path / "step1.pth")]
    for path, model, meta in zip(paths, (step0, step1), (meta0, meta1), strict=True):
        torch.save({"model": model, "ykd_meta": meta, "iteration": 9, "optimizer": {}}, path)
    return paths, step0, step1


def test_average_checkpoint_files_with_module_rename(tmp_path):
    paths, step0, step1 = _save_steps(tmp_path, _meta(0), _meta(1))
    result = average_checkpoint_files(
        paths,
        [0.25, 0.75],
        include=r"^(task_modules\.1|mask_head)\.",
        rename={"task_modules.0.": "task_modules.1."},
    )
    assert set(result) == {"model", "ykd_meta", "averaging"}
    assert result["ykd_meta"] == _meta(1)
    assert result["averaging"] == {
        "inputs": paths,
        "weights": [0.25, 0.75],
        "include": r"^(task_modules\.1|mask_head)\.",
        "exclude": None,
        "class_rows": "shared",
        "rename": {"task_modules.0.": "task_modules.1."},
        "shared_keys_only": False,
        "trunk": None,
    }
    model = result["model"]
    assert list(model) == list(step1)
    cls = torch.tensor([300.0, 304.0, 308.0, 412.0, 416.0, 318.0])
    assert torch.equal(model[BOX + "cls_score.bias"], cls)
    assert torch.equal(model[MASK + "bias"], torch.tensor([300.0, 304.0, 308.0, 412.0, 416.0]))
    for key in step1:
        if key.startswith(("task_modules.0.", "backbone.")):
            assert torch.equal(model[key], step1[key]), key


@pytest.mark.parametrize(
    "meta0, problem",
    [
        (_meta(1, scenario="3-1"), "the scenarios differ"),
        (_meta(0, names=("b", "a", "c", "d", "e")), "neither class_names starts the other"),
    ],
)
def test_average_checkpoint_files_refuses_incompatible_meta(tmp_path, meta0, problem):
    paths, _, _ = _save_steps(tmp_path, meta0, _meta(1))
    with pytest.raises(ValueError, match=f"step0.pth holds .*step1.pth holds .*{problem}"):
        average_checkpoint_files(paths, [0.5, 0.5], exclude="^task_modules")


def test_a_shared_step0_of_another_scenario_averages(tmp_path):
    """15-5 and 15-1 share step 0: a step-0 checkpoint made under 3-1 starts a 3-2 run."""
    paths, _, _ = _save_steps(tmp_path, _meta(0, scenario="3-1"), _meta(1))
    result = average_checkpoint_files(paths, [0.5, 0.5], include="^backbone")
    assert result["ykd_meta"]["scenario"] == "3-2"


def test_average_checkpoint_files_without_meta(tmp_path):
    paths, _, step1 = _save_steps(tmp_path)
    result = average_checkpoint_files(paths, [0.5, 0.5], include="^backbone")
    assert "ykd_meta" not in result
    assert torch.equal(result["model"]["backbone.w"], _t([4.0]))


def test_official_mode_interpolates_same_shape_non_trunk_tensors_and_takes_another_trunk(tmp_path):
    """
    The authors' averaging at w = 0.25 on the earlier step, by hand: same-shape head tensors are
    0.25·earlier + 0.75·current; grown predictors (shape changed), the tensors the renamed earlier
    step lacks, and every key containing "backbone." are the current step's; the trunk is then
    the third checkpoint's.
    """
    paths, step0, step1 = _save_steps(tmp_path, _meta(0), _meta(1))
    fc = "roi_heads.box_head.fc1.weight"
    step0["task_modules.0." + fc] = _t([0.0, 4.0])
    step0["mask_head.head.mask_fcn1.weight"] = _t([4.0])
    step1["task_modules.0." + fc] = _t([0.0, 4.0])
    step1["task_modules.1." + fc] = _t([8.0, 12.0])
    step1["mask_head.head.mask_fcn1.weight"] = _t([8.0])
    step1["teacher_backbone.w"] = _t([1.0])
    step1["distiller.encoder.weight"] = _t([2.0])
    for path, model in zip(paths, (step0, step1), strict=True):
        torch.save({"model": model, "ykd_meta": _meta(int(path.endswith("1.pth")))}, path)
    trunk = os.fspath(tmp_path / "trunk.pth")
    torch.save({"model": {"backbone.w": _t([20.0])}}, trunk)
    result = average_checkpoint_files(
        paths,
        [0.25, 0.75],
        rename={"task_modules.0.": "task_modules.1."},
        trunk=trunk,
        **OFFICIAL_OPTIONS,
    )
    model = result["model"]
    assert list(model) == list(step1)
    assert torch.equal(model["task_modules.1." + fc], _t([6.0, 10.0]))
    assert torch.equal(model["mask_head.head.mask_fcn1.weight"], _t([7.0]))
    assert torch.equal(model["backbone.w"], _t([20.0]))
    unchanged = [BOX + "cls_score.weight", BOX + "cls_score.bias", BOX + "bbox_pred.weight"]
    unchanged += [MASK + "weight", MASK + "bias", "task_modules.0." + fc]
    unchanged += ["teacher_backbone.w", "distiller.encoder.weight"]
    for key in unchanged:
        assert torch.equal(model[key], step1[key]), key
    assert result["averaging"]["trunk"] == trunk


def test_a_trunk_checkpoint_of_another_trunk_is_refused(tmp_path):
    paths, _, _ = _save_steps(tmp_path, _meta(0), _meta(1))
    trunk = os.fspath(tmp_path / "trunk.pth")
    torch.save({"model": {"backbone.w": _t([1.0, 2.0])}}, trunk)
    with pytest.raises(ValueError, match=r"trunk.pth has 'backbone.w' of shape \(2,\)"):
        average_checkpoint_files(paths, [0.25, 0.75], trunk=trunk, **OFFICIAL_OPTIONS)
