"""Faster-ILOD's trunk KD inside YKDRCNN: built by name from config, trains the student's trunk only."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ykd.distillation import FasterILODFeatureKD, add_kd_config


def trunk_cfg(make_cfg, classes_per_task=(3, 2), teacher="separate"):
    cfg = make_cfg("fpn", classes_per_task=classes_per_task)
    add_kd_config(cfg)
    cfg.MODEL.YKD.TEACHER = teacher
    cfg.MODEL.YKD.TRUNK_KD.WEIGHT = 1.0
    return cfg


def test_built_at_steps_t_ge_1_only(make_cfg):
    torch.manual_seed(0)
    model = build_model(trunk_cfg(make_cfg))
    assert isinstance(model.distiller.feature_kds["faster_ilod"], FasterILODFeatureKD)
    torch.manual_seed(0)
    step0 = build_model(trunk_cfg(make_cfg, classes_per_task=[3]))
    assert len(step0.distiller.feature_kds) == 0


def test_a_shared_trunk_is_refused(make_cfg):
    with pytest.raises(ValueError, match="TEACHER 'separate'"):
        build_model(trunk_cfg(make_cfg, teacher="shared"))


def test_gradients_reach_only_the_students_trunk(make_cfg, make_inputs):
    torch.manual_seed(0)
    cfg = trunk_cfg(make_cfg)
    for key in ("CLS", "BOX", "MASK", "RPN"):
        cfg.MODEL.YKD.KD_WEIGHTS[key] = 0.0
    model = build_model(cfg).train()
    with torch.no_grad():  # a teacher trunk that differs from the student's
        for p in model.teacher_backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    with EventStorage():
        losses = model(make_inputs([[3, 4], [4]]))
    assert "loss_kd_feat" in losses and losses["loss_kd_feat"] > 0
    losses["loss_kd_feat"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.teacher_backbone.parameters())
    assert all(p.grad is None for m in model.frozen_modules() for p in m.parameters())
    assert all(p.grad is None for p in model.task_modules[-1].parameters())
