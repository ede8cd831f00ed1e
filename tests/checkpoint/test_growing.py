"""Checkpoint meta records, step checks and growth from the previous step's checkpoint."""

import copy

import pytest
import torch
from detectron2.modeling import build_model

from ykd.checkpoint import YKDCheckpointer, make_ykd_meta, previous_step_meta

NAMES = ["a", "b", "c", "d", "e", "f"]


def _checkpointer(model, tmp_path, scenario="3-2", step=None, **kwargs) -> YKDCheckpointer:
    step = model.num_tasks - 1 if step is None else step
    names = NAMES[: sum(model.num_classes_per_task)]
    meta = make_ykd_meta(model, scenario=scenario, step=step, class_names=names)
    return YKDCheckpointer(model, str(tmp_path), ykd_meta=meta, **kwargs)


@pytest.fixture
def step0_path(make_cfg, tmp_path):
    torch.manual_seed(0)
    model = build_model(make_cfg())
    _checkpointer(model, tmp_path).save("step0")
    return str(tmp_path / "step0.pth"), model


@pytest.mark.parametrize("init", ["default", "mib"])
def test_growing_from_checkpoint_matches_add_task(init, step0_path, make_cfg, tmp_path):
    path, step0 = step0_path
    cfg = make_cfg(classes_per_task=[3, 2])
    cfg.MODEL.YKD.INIT_NEW_CLASSES = init
    cfg.MODEL.YKD.TEACHER = "separate"
    torch.manual_seed(1)
    step1 = build_model(cfg)
    fresh = copy.deepcopy(step1.state_dict())
    _checkpointer(step1, tmp_path).load_previous_step(path)

    in_memory = copy.deepcopy(step0)
    in_memory.new_class_init, in_memory.teacher = init, "separate"
    in_memory.add_task(2)
    grown, expected = step1.state_dict(), in_memory.state_dict()
    assert grown.keys() == expected.keys()
    new_rows = {
        "task_modules.1.roi_heads.box_predictor.cls_score.weight": slice(3, 5),
        "task_modules.1.roi_heads.box_predictor.cls_score.bias": slice(3, 5),
        "task_modules.1.roi_heads.box_predictor.bbox_pred.weight": slice(12, 20),
        "task_modules.1.roi_heads.box_predictor.bbox_pred.bias": slice(12, 20),
        "mask_head.head.predictor.weight": slice(3, 5),
        "mask_head.head.predictor.bias": slice(3, 5),
    }
    for key, value in grown.items():
        if key not in new_rows:
            assert torch.equal(value, expected[key]), key
            continue
        rows = new_rows[key]
        kept = torch.ones(len(value), dtype=torch.bool)
        kept[rows] = False
        assert torch.equal(value[kept], expected[key][kept]), key
        if init == "default" or "cls_score" not in key:
            assert torch.equal(value[rows], fresh[key][rows]), key
        else:
            assert torch.equal(value[rows], expected[key][rows]), key
    assert torch.equal(
        grown["teacher_backbone.fpn_output2.weight"],
        step0.state_dict()["backbone.fpn_output2.weight"],
    )


def test_loading_another_step_fails_with_a_clear_message(step0_path, make_cfg, tmp_path):
    path, _ = step0_path
    step1 = build_model(make_cfg(classes_per_task=[3, 2]))
    with pytest.raises(ValueError) as error:
        _checkpointer(step1, tmp_path).load(path)
    message = str(error.value)
    assert "\n" not in message
    assert "step 0 (1 task modules, classes per task [3])" in message
    assert "step 1 (2 task modules, classes per task [3, 2])" in message
    assert "load_previous_step()" in message


def test_another_scenario_with_the_same_classes_loads(step0_path, make_cfg, tmp_path):
    # 3-2 and 3-1 share their step 0 (classes a, b, c in one task module).
    path, saved = step0_path
    model = build_model(make_cfg())
    _checkpointer(model, tmp_path, scenario="3-1").load(path)
    for key, value in saved.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    step1 = build_model(make_cfg(classes_per_task=[3, 1]))
    _checkpointer(step1, tmp_path, scenario="3-1").load_previous_step(path)


def test_loading_other_classes_fails(step0_path, make_cfg, tmp_path):
    path, _ = step0_path
    model = build_model(make_cfg())
    meta = make_ykd_meta(model, scenario="3-2", step=0, class_names=["a", "b", "x"])
    with pytest.raises(ValueError, match="differing: class_names"):
        YKDCheckpointer(model, str(tmp_path), ykd_meta=meta).load(path)


def test_resume_of_the_same_step_loads_everything(make_cfg, tmp_path):
    torch.manual_seed(0)
    model = build_model(make_cfg(classes_per_task=[3, 2]))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _checkpointer(model, tmp_path, optimizer=optimizer).save("step1")
    torch.manual_seed(1)
    other = build_model(make_cfg(classes_per_task=[3, 2]))
    _checkpointer(other, tmp_path).load(str(tmp_path / "step1.pth"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key
    saved = torch.load(tmp_path / "step1.pth", weights_only=False)
    assert saved["ykd_meta"] == {
        "scenario": "3-2",
        "step": 1,
        "class_names": ["a", "b", "c", "d", "e"],
        "num_modules": 2,
        "num_classes_per_task": [3, 2],
    }


def test_meta_records(make_cfg):
    model = build_model(make_cfg(classes_per_task=[3, 2, 1]))
    meta = make_ykd_meta(model, scenario="3-2", step=2, class_names=NAMES)
    assert previous_step_meta(meta) == {
        "scenario": "3-2",
        "step": 1,
        "class_names": NAMES[:5],
        "num_modules": 2,
        "num_classes_per_task": [3, 2],
    }
    with pytest.raises(ValueError, match="5 class names given for a model of 6 classes"):
        make_ykd_meta(model, scenario="3-2", step=2, class_names=NAMES[:5])


def test_growing_into_a_model_with_interactive_kd_starts_its_encoders_afresh(
    step0_path, make_cfg, tmp_path
):
    path, step0 = step0_path
    cfg = make_cfg(classes_per_task=[3, 2])
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS.RECONSTRUCTION = 1.0
    torch.manual_seed(1)
    step1 = build_model(cfg)
    fresh = copy.deepcopy(step1.state_dict())
    interactive = [k for k in fresh if k.startswith("distiller.")]
    assert interactive, "the step-1 model has no interactive KD parameters"
    _checkpointer(step1, tmp_path).load_previous_step(path)
    grown = step1.state_dict()
    for key in interactive:
        assert torch.equal(grown[key], fresh[key]), key
    assert torch.equal(
        grown["task_modules.0.roi_heads.box_predictor.cls_score.weight"],
        step0.state_dict()["task_modules.0.roi_heads.box_predictor.cls_score.weight"],
    )
