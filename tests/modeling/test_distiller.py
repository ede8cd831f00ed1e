"""YKDDistiller built from keyword arguments, on stand-in task modules: which inputs each term reads."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes
from torch import nn

from ykd.distillation import FeatureDistiller, build_kd_loss
from ykd.modeling.distiller import KDProposals, MaskKDOutputs, YKDDistiller
from ykd.modeling.roi_heads import BoxOutputs
from ykd.modeling.rpn import AnchorOutputs

R, K_OLD, K_NEW, D = 5, 2, 1, 4


def _randn(*shape, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).requires_grad_(requires_grad)


def _box_outputs(num_classes, seed, requires_grad=False):
    return BoxOutputs(
        pooled=_randn(R, 2, 3, 3, seed=seed, requires_grad=requires_grad),
        scores=_randn(R, num_classes + 1, seed=seed + 1, requires_grad=requires_grad),
        deltas=_randn(R, num_classes * 4, seed=seed + 2, requires_grad=requires_grad),
        roi_features=None,
        hidden=_randn(R, D, seed=seed + 3, requires_grad=requires_grad),
    )


class StandInTeacher:
    """A task module t-1 whose ROI heads record what they are given."""

    def __init__(self):
        self.outputs = _box_outputs(K_OLD, seed=10)
        self.pooled_inputs, self.pool_calls = [], []
        self.roi_heads = SimpleNamespace(pool=self._pool, predict_pooled=self._predict)
        self.box_predictor = SimpleNamespace(cls_score=nn.Linear(D, K_OLD + 1))

    def _pool(self, features, boxes):
        self.pool_calls.append((features, boxes))
        return torch.zeros(R, 2, 3, 3)

    def _predict(self, pooled):
        self.pooled_inputs.append(pooled)
        return self.outputs


class RecordingFeatureKD(FeatureDistiller):
    config_node = "UNUSED"
    loss_names = ("loss_kd_recorded",)

    def __init__(self, needs_rois):
        super().__init__()
        self.needs_rois = needs_rois
        self.inputs = None

    def distil(self, inputs):
        self.inputs = inputs
        return {"loss_kd_recorded": torch.tensor(1.0)}


def _anchor_outputs(seed):
    levels = [(2, 6), (2, 3)]
    return AnchorOutputs(
        anchors=[Boxes(torch.zeros(a, 4)) for _, a in levels],
        objectness=[_randn(n, a, seed=seed + i) for i, (n, a) in enumerate(levels)],
        deltas=[_randn(n, a, 4, seed=seed + 5 + i) for i, (n, a) in enumerate(levels)],
    )


def _kd_proposals(anchor_outputs=None, mask_boxes=False):
    boxes = [Boxes(torch.rand(3, 4)), Boxes(torch.rand(2, 4))]
    return KDProposals(
        anchor_outputs or _anchor_outputs(seed=20), boxes, boxes if mask_boxes else None, None
    )


def _call(distiller, *, kd, teacher, shared, student_boxes=None, student_masks=None, **kw):
    student = SimpleNamespace(box_predictor=SimpleNamespace(cls_score=nn.Linear(D, 4)))
    features = {"p2": torch.zeros(2, 3, 4, 4)}
    teacher_features = features if shared else {"p2": torch.ones(2, 3, 4, 4)}
    return (
        distiller(
            kd=kd,
            student=student,
            teacher=teacher,
            student_anchor_outputs=kw.get("student_anchor_outputs", _anchor_outputs(seed=0)),
            student_boxes=student_boxes,
            student_masks=student_masks,
            student_features=features,
            teacher_features=teacher_features,
            shared_teacher=shared,
            teacher_mask_head=kw.get("teacher_mask_head"),
            terms=kw.get("terms", distiller.computed_terms({})),
        ),
        features,
        teacher_features,
    )


def test_rpn_term_by_formula():
    s, t = _anchor_outputs(seed=0), _anchor_outputs(seed=30)
    distiller = YKDDistiller(kd_cls_loss=None, loss_weights={"loss_kd_rpn": 2.0})
    assert not distiller.distils_rois
    losses, _, _ = _call(
        distiller,
        kd=_kd_proposals(t),
        teacher=StandInTeacher(),
        shared=True,
        student_anchor_outputs=s,
    )
    o_s, o_t = (np.concatenate([o.numpy() for o in a.objectness], 1) for a in (s, t))
    d_s, d_t = (np.concatenate([d.numpy() for d in a.deltas], 1) for a in (s, t))
    gap = o_t - o_s
    expected = (np.maximum(gap, 0) ** 2).mean() + (((d_s - d_t) ** 2).sum(2) * (gap > 0.1)).mean()
    assert set(losses) == {"loss_kd_rpn"}
    assert losses["loss_kd_rpn"].item() == pytest.approx(2.0 * expected, rel=1e-5)


@pytest.mark.parametrize("shared", [True, False])
def test_roi_terms_and_the_teachers_pooled_features(shared):
    kl = build_kd_loss("kl")
    distiller = YKDDistiller(kd_cls_loss=kl, loss_weights={"loss_kd_cls": 0.5, "loss_kd_box": 3.0})
    teacher, student_boxes = (
        StandInTeacher(),
        _box_outputs(K_OLD + K_NEW, seed=0, requires_grad=True),
    )
    kd = _kd_proposals()
    losses, _, teacher_features = _call(
        distiller, kd=kd, teacher=teacher, shared=shared, student_boxes=student_boxes
    )
    (pooled,) = teacher.pooled_inputs
    if shared:  # the student's pooled features, detached, and no pooling of its own
        assert teacher.pool_calls == [] and not pooled.requires_grad
        torch.testing.assert_close(pooled, student_boxes.pooled.detach())
    else:
        ((features, boxes),) = teacher.pool_calls
        assert features is teacher_features and boxes is kd.boxes
    t = teacher.outputs
    torch.testing.assert_close(losses["loss_kd_cls"], 0.5 * kl(student_boxes.scores, t.scores))
    box = ((student_boxes.deltas[:, : K_OLD * 4] - t.deltas) ** 2).view(R, K_OLD, 4).sum(2).mean()
    torch.testing.assert_close(losses["loss_kd_box"], 3.0 * box)
    sum(losses.values()).backward()
    assert student_boxes.scores.grad is not None and student_boxes.deltas.grad is not None


@pytest.mark.parametrize("shared", [True, False])
def test_mask_term_reads_the_named_mask_outputs(shared):
    distiller = YKDDistiller(kd_cls_loss=None, loss_weights={"loss_kd_mask": 1.0})
    seen = {}

    def logits(x):
        seen["logits_input"] = x
        return torch.zeros(3, K_OLD, 2, 2)

    def roi_features(features, boxes, module):
        seen["roi_features"] = (features, boxes, module)
        return torch.ones(3, 1)

    # FPN (the mask head pools by itself); the teacher's mask logits are 0.
    mask_head = SimpleNamespace(pooler=object(), logits=logits, roi_features=roi_features)
    student_masks = MaskKDOutputs(
        roi_features=_randn(3, 1, seed=1, requires_grad=True),
        logits=_randn(3, K_OLD + K_NEW, 2, 2, seed=2, requires_grad=True),
    )
    teacher = StandInTeacher()
    kd = _kd_proposals(mask_boxes=True)
    losses, _, teacher_features = _call(
        distiller,
        kd=kd,
        teacher=teacher,
        shared=shared,
        student_boxes=_box_outputs(K_OLD + K_NEW, seed=0),
        student_masks=student_masks,
        teacher_mask_head=mask_head,
    )
    if shared:
        assert "roi_features" not in seen and not seen["logits_input"].requires_grad
        torch.testing.assert_close(seen["logits_input"], student_masks.roi_features.detach())
    else:
        features, boxes, module = seen["roi_features"]
        assert features is teacher_features and boxes is kd.mask_boxes and module is teacher
    # Teacher mask logits 0: BCE against probability 0.5 of the old-class logits.
    old = student_masks.logits[:, :K_OLD].detach().numpy()
    expected = (np.logaddexp(0, old) - 0.5 * old).mean()
    assert losses["loss_kd_mask"].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("needs_rois", [False, True])
def test_feature_distillers_get_named_inputs(needs_rois):
    recorder = RecordingFeatureKD(needs_rois)
    distiller = YKDDistiller(kd_cls_loss=None, loss_weights={}, feature_kds={"rec": recorder})
    assert distiller.active and distiller.distils_rois == needs_rois
    teacher = StandInTeacher()
    student_boxes = _box_outputs(K_OLD + K_NEW, seed=0) if needs_rois else None
    losses, features, teacher_features = _call(
        distiller,
        kd=_kd_proposals(),
        teacher=teacher,
        shared=False,
        student_boxes=student_boxes,
    )
    inputs = recorder.inputs
    assert set(losses) == {"loss_kd_recorded"}
    assert inputs.student_trunk is features and inputs.teacher_trunk is teacher_features
    assert inputs.shared_teacher is False
    if needs_rois:
        assert inputs.student_hidden is student_boxes.hidden
        assert inputs.teacher_hidden is teacher.outputs.hidden
        assert inputs.teacher_head is teacher.box_predictor.cls_score
    else:
        assert inputs.student_hidden is None and inputs.teacher_logits is None


def test_positive_cls_weight_needs_a_loss():
    with pytest.raises(ValueError, match="needs a kd_cls_loss"):
        YKDDistiller(kd_cls_loss=None, loss_weights={"loss_kd_cls": 1.0})
