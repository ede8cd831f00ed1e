"""Faster-ILOD's trunk feature distillation: golden values, gradient routing, config and errors."""

import kd_reference as ref
import pytest
import torch
from detectron2.config import get_cfg

from ykd.config import add_ykd_config
from ykd.distillation import (
    FEATURE_KD_REGISTRY,
    FasterILODFeatureKD,
    FeatureKDInputs,
    add_kd_config,
    build_feature_kds_from_cfg,
)


def _features(seed=0, levels=("p2", "p3")):
    g = torch.Generator().manual_seed(seed)
    shapes = {"p2": (2, 4, 6, 6), "p3": (2, 4, 3, 3)}
    student = {n: torch.randn(shapes[n], generator=g, dtype=torch.float64) for n in levels}
    teacher = {n: torch.randn(shapes[n], generator=g, dtype=torch.float64) for n in levels}
    return student, teacher


def test_matches_reference_summed_over_levels():
    student, teacher = _features()
    value = FasterILODFeatureKD(weight=0.5)(student, teacher)["loss_kd_feat"]
    expected = 0.5 * sum(
        ref.filtered_l1_features(student[n].numpy(), teacher[n].numpy()) for n in student
    )
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_by_hand():
    # Teacher [2, 0] (mean 1) -> [1, -1]; student [0, 0] -> [0, 0]; max([1, -1], 0) = [1, 0], mean 0.5.
    student = {"res4": torch.zeros(1, 1, 1, 2)}
    teacher = {"res4": torch.tensor([[[[2.0, 0.0]]]])}
    assert FasterILODFeatureKD(weight=1.0)(student, teacher)["loss_kd_feat"].item() == 0.5
    # Same centred maps (a constant shift) give 0: the loss ignores each map's mean.
    assert FasterILODFeatureKD(weight=1.0)(teacher, {"res4": teacher["res4"] + 7.0})[
        "loss_kd_feat"
    ].item() == pytest.approx(0.0)


def test_gradients_reach_only_the_student():
    student, teacher = _features()
    student = {n: f.requires_grad_(True) for n, f in student.items()}
    teacher = {n: f.requires_grad_(True) for n, f in teacher.items()}
    FasterILODFeatureKD(weight=1.0)(student, teacher)["loss_kd_feat"].backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in student.values())
    assert all(f.grad is None for f in teacher.values())


def test_in_features_selects_levels():
    student, teacher = _features()
    value = FasterILODFeatureKD(weight=1.0, in_features=["p3"])(student, teacher)["loss_kd_feat"]
    expected = ref.filtered_l1_features(student["p3"].numpy(), teacher["p3"].numpy())
    assert value.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(KeyError, match="IN_FEATURES"):
        FasterILODFeatureKD(weight=1.0, in_features=["p9"])(student, teacher)


def test_errors():
    with pytest.raises(ValueError, match="weight must be > 0"):
        FasterILODFeatureKD(weight=0.0)
    student, teacher = _features()
    teacher["p3"] = teacher["p3"][:, :2]
    with pytest.raises(ValueError, match="same architecture"):
        FasterILODFeatureKD(weight=1.0)(student, teacher)


def test_distil_reads_the_trunk_fields():
    student, teacher = _features()
    kd = FasterILODFeatureKD(weight=1.0)
    inputs = FeatureKDInputs(student_trunk=student, teacher_trunk=teacher, shared_teacher=False)
    torch.testing.assert_close(kd.distil(inputs), kd(student, teacher))
    assert kd.needs_separate_teacher and not kd.needs_rois


def test_registered_and_built_by_its_own_enabled_rule():
    cfg = get_cfg()
    add_ykd_config(cfg)
    add_kd_config(cfg)
    ykd = cfg.MODEL.YKD
    assert FEATURE_KD_REGISTRY.get("faster_ilod") is FasterILODFeatureKD
    names = list(ykd.FEATURE_KD.NAMES)
    assert names == ["interactive", "faster_ilod"]
    assert build_feature_kds_from_cfg(ykd, names, student_dim=8, teacher_dim=8) == {}
    ykd.TRUNK_KD.WEIGHT = 2.0
    ykd.TRUNK_KD.IN_FEATURES = ["res4"]
    built = build_feature_kds_from_cfg(ykd, names, student_dim=8, teacher_dim=8)
    assert list(built) == ["faster_ilod"]
    assert built["faster_ilod"].weight == 2.0 and built["faster_ilod"].in_features == ("res4",)
    assert build_feature_kds_from_cfg(ykd, ["interactive"], student_dim=8, teacher_dim=8) == {}
    with pytest.raises(KeyError, match="registered"):
        build_feature_kds_from_cfg(ykd, ["nope"], student_dim=8, teacher_dim=8)
