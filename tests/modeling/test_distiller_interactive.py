"""Interactive feature KD inside YKDRCNN: built from config at steps t >= 1, trains the right parts."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ykd.distillation import InteractiveKD
from ykd.distillation.interactive import LOSS_NAMES


def interactive_cfg(make_cfg, arch="fpn", classes_per_task=(3, 2), **weights):
    cfg = make_cfg(arch, classes_per_task=classes_per_task)
    cfg.MODEL.YKD.INTERACTIVE.HIDDEN_DIMS = [16]
    cfg.MODEL.YKD.INTERACTIVE.MESSAGE_DIM = 8
    for key in ("RECONSTRUCTION", "AGREEMENT", "TEACHER_TO_STUDENT", "STUDENT_TO_TEACHER"):
        cfg.MODEL.YKD.INTERACTIVE.WEIGHTS[key] = weights.get(key, 1.0)
    return cfg


def test_off_by_default_and_at_step0(make_cfg):
    torch.manual_seed(0)
    assert len(build_model(make_cfg(classes_per_task=[3, 2])).distiller.feature_kds) == 0
    torch.manual_seed(0)
    step0 = build_model(interactive_cfg(make_cfg, classes_per_task=[3]))
    assert len(step0.distiller.feature_kds) == 0  # no teacher: the exchange would never run


@pytest.mark.parametrize("arch", ["fpn", "c4"])
def test_interactive_terms_train_the_student_and_the_exchange_only(arch, make_cfg, make_inputs):
    torch.manual_seed(0)
    model = build_model(interactive_cfg(make_cfg, arch)).train()
    feature_kd = model.distiller.feature_kds["interactive"]
    assert isinstance(feature_kd, InteractiveKD)
    predictor = model.task_modules[-1].box_predictor
    assert feature_kd.student_encoder[0].in_features == predictor.cls_score.in_features
    with EventStorage():
        losses = model(make_inputs([[3, 4], [4]]))
        assert set(LOSS_NAMES) <= set(losses)
        assert all(torch.isfinite(v) for v in losses.values())
        sum(v for k, v in losses.items() if k in LOSS_NAMES).backward()
    assert all(p.grad is not None for p in feature_kd.parameters())
    assert predictor.cls_score.weight.grad is not None  # loss_kd_int_t2s reads through it
    assert all(p.grad is None for m in model.frozen_modules() for p in m.parameters())
