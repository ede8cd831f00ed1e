"""The trunk at incremental steps: frozen (MODEL.YKD.TRUNK.LR_FACTOR 0), BatchNorm frozen, or a
smaller learning rate (ContinualTrainer.build_optimizer)."""

import copy

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer

from tests.modeling.test_ykd_rcnn import train_step
from ykd.engine import ContinualTrainer


def _norms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _build(make_cfg, classes_per_task, **trunk):
    cfg = make_cfg(classes_per_task=classes_per_task)
    cfg.SOLVER.BASE_LR, cfg.SOLVER.MOMENTUM = 0.1, 0.9
    for key, value in trunk.items():
        setattr(cfg.MODEL.YKD.TRUNK, key, value)
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def test_a_frozen_trunk_keeps_weights_and_statistics_at_an_incremental_step(make_cfg, make_inputs):
    cfg, model = _build(make_cfg, [3, 2], LR_FACTOR=0.0)
    assert _norms(model.backbone), "the slim trunk has BatchNorm layers"
    before = copy.deepcopy(model.backbone.state_dict())
    optimizer = build_optimizer(cfg, model)
    for _ in range(2):
        train_step(model, make_inputs([[4], [3]]), optimizer)
    assert not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    # The student still learns.
    assert any(p.requires_grad for p in model.task_modules[-1].parameters())


def test_frozen_norms_keep_their_statistics_while_the_trunk_learns(make_cfg, make_inputs):
    cfg, model = _build(make_cfg, [3, 2], FREEZE_NORM=True)
    norms = _norms(model.backbone)
    stats = [(n.running_mean.clone(), n.running_var.clone()) for n in norms]
    conv = next(p for n, p in model.backbone.named_parameters() if "conv" in n)
    conv_before = conv.detach().clone()
    optimizer = build_optimizer(cfg, model)
    train_step(model, make_inputs([[4], [3]]), optimizer)
    assert model.backbone.training and not any(n.training for n in norms)
    for norm, (mean, var) in zip(norms, stats, strict=True):
        assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
    assert not torch.equal(conv, conv_before)


@pytest.mark.parametrize("trunk", [{"LR_FACTOR": 0.0}, {"FREEZE_NORM": True}])
def test_the_trunk_options_leave_step0_alone(trunk, make_cfg, make_inputs):
    cfg, model = _build(make_cfg, [3], **trunk)
    means = [n.running_mean.clone() for n in _norms(model.backbone)]
    train_step(model, make_inputs([[1], [2]]), build_optimizer(cfg, model))
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert any(
        not torch.equal(n.running_mean, m)
        for n, m in zip(_norms(model.backbone), means, strict=True)
    )


def test_add_task_freezes_the_trunk(make_cfg):
    _, model = _build(make_cfg, [3], LR_FACTOR=0.0)
    assert all(p.requires_grad for p in model.backbone.parameters())
    model.add_task(2)
    assert not any(p.requires_grad for p in model.backbone.parameters())


def _learning_rates(optimizer, model) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize("step, factor, expected", [(1, 0.1, 0.01), (0, 0.1, 0.1), (1, 1.0, 0.1)])
def test_the_trunk_learning_rate_factor_applies_at_incremental_steps(
    step, factor, expected, make_cfg
):
    cfg, model = _build(make_cfg, [3, 2] if step else [3], LR_FACTOR=factor)
    cfg.CONTINUAL.STEP = step
    rates = _learning_rates(ContinualTrainer.build_optimizer(cfg, model), model)
    trunk = {n: r for n, r in rates.items() if n.startswith("backbone.")}
    heads = {n: r for n, r in rates.items() if not n.startswith("backbone.")}
    assert trunk and heads
    assert all(r == pytest.approx(expected) for r in trunk.values())
    assert all(r == pytest.approx(0.1) for r in heads.values())


def test_a_negative_trunk_factor_is_a_one_line_error(make_cfg):
    cfg, model = _build(make_cfg, [3, 2])
    cfg.CONTINUAL.STEP, cfg.MODEL.YKD.TRUNK.LR_FACTOR = 1, -0.5
    with pytest.raises(ValueError, match="MODEL.YKD.TRUNK.LR_FACTOR must be >= 0"):
        ContinualTrainer.build_optimizer(cfg, model)
