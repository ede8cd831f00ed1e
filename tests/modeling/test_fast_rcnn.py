"""TaskFastRCNNOutputLayers built from kwargs: scores kept to a class range, unbiased loss, growth."""

import numpy as np
import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ykd.modeling.fast_rcnn import TaskFastRCNNOutputLayers

LOGITS = [[2.0, 0.0, 1.0, -1.0, 0.5], [0.0, 3.0, -2.0, 1.0, 0.0]]  # 4 classes + background


def _predictor(**kwargs) -> TaskFastRCNNOutputLayers:
    torch.manual_seed(0)
    options = {"box2box_transform": Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), "num_classes": 4}
    return TaskFastRCNNOutputLayers(ShapeSpec(channels=6), **{**options, **kwargs})


def _proposals(counts, size=32) -> list[Instances]:
    proposals = []
    for i, count in enumerate(counts):
        p = Instances((size, size))
        p.proposal_boxes = Boxes(torch.tensor([[2.0, 2.0, 20.0, 20.0]]).repeat(count, 1) + i)
        proposals.append(p)
    return proposals


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("mode", ["slice", "renormalise"])
def test_scores_outside_the_kept_classes_are_0(mode):
    predictor = _predictor(inference_scores=mode)
    logits = torch.tensor(LOGITS)
    probs = torch.cat(predictor.predict_probs((logits, None), _proposals([1, 1]), (1, 3)))
    z = np.array(LOGITS)
    if mode == "slice":  # softmax over all classes, then restricted to 1, 2 and the background
        expected = _softmax(z) * np.array([0, 1, 1, 0, 1])
    else:  # softmax over {1, 2, bg} only
        expected = np.zeros_like(z)
        expected[:, [1, 2, 4]] = _softmax(z[:, [1, 2, 4]])
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_all_classes_is_detectron2s_inference():
    predictor = _predictor()
    reference = FastRCNNOutputLayers(
        ShapeSpec(channels=6), box2box_transform=predictor.box2box_transform, num_classes=4
    )
    reference.load_state_dict(predictor.state_dict())
    proposals = _proposals([3, 2])
    predictions = predictor(torch.randn(5, 6, generator=torch.Generator().manual_seed(1)))
    for found, expected in zip(
        predictor.inference(predictions, proposals)[0],
        reference.inference(predictions, proposals)[0],
        strict=True,
    ):
        assert torch.equal(found.scores, expected.scores)
        assert torch.equal(found.pred_boxes.tensor, expected.pred_boxes.tensor)
    kept = predictor.inference(predictions, proposals, classes=(2, 4))[0]
    assert all(((i.pred_classes >= 2) & (i.pred_classes < 4)).all() for i in kept)


def test_unbiased_loss_counts_old_classes_as_background():
    predictor = _predictor(num_old_classes=2)
    logits = torch.tensor(LOGITS, requires_grad=True)
    proposals = _proposals([1, 1])
    proposals[0].gt_classes = torch.tensor([4])  # background: log p(bg ∪ old classes 0, 1)
    proposals[1].gt_classes = torch.tensor([3])  # a new class: plain log p(3)
    proposals[0].gt_boxes = proposals[1].gt_boxes = Boxes(torch.tensor([[2.0, 2.0, 20.0, 20.0]]))
    deltas = torch.zeros(2, 16)
    with EventStorage():  # Detectron2's losses log their accuracy
        loss = predictor.losses((logits, deltas), proposals)["loss_cls"]
        plain = _predictor(num_old_classes=2, cls_loss="ce").losses((logits, deltas), proposals)
    p = _softmax(np.array(LOGITS))
    expected = -(np.log(p[0, [0, 1, 4]].sum()) + np.log(p[1, 3])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert plain["loss_cls"].item() == pytest.approx(-(np.log(p[0, 4]) + np.log(p[1, 3])) / 2)


def test_expand_classes_keeps_rows_and_makes_all_classes_old():
    predictor = _predictor(num_old_classes=1)
    cls_weight, box_weight = predictor.cls_score.weight.clone(), predictor.bbox_pred.weight.clone()
    predictor.expand_classes(2)
    assert (predictor.num_classes, predictor.num_old_classes) == (6, 4)
    assert predictor.cls_score.out_features == 7 and predictor.bbox_pred.out_features == 24
    assert torch.equal(predictor.cls_score.weight[:4], cls_weight[:4])
    assert torch.equal(predictor.cls_score.weight[6], cls_weight[4])  # background, last
    assert torch.equal(predictor.bbox_pred.weight[:16], box_weight)
    with pytest.raises(ValueError, match="MODEL.YKD.INIT_NEW_CLASSES must be 'default' or 'mib'"):
        predictor.expand_classes(1, init="zeros")


def test_bad_options_name_their_config_key():
    with pytest.raises(ValueError, match="MODEL.YKD.CLS_LOSS"):
        _predictor(cls_loss="focal")
    with pytest.raises(ValueError, match="MODEL.YKD.INFERENCE.SCORES"):
        _predictor(inference_scores="max")
