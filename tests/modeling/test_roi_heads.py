"""TaskStandardROIHeads built from kwargs: inference kept to a class range, extra boxes in training."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import FastRCNNConvFCHead
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ykd.modeling.fast_rcnn import TaskFastRCNNOutputLayers
from ykd.modeling.roi_heads import TaskStandardROIHeads, pool_parts

SIZE = 32


def _heads() -> TaskStandardROIHeads:
    torch.manual_seed(0)
    head = FastRCNNConvFCHead(ShapeSpec(channels=4, height=7, width=7), conv_dims=[], fc_dims=[16])
    predictor = TaskFastRCNNOutputLayers(
        ShapeSpec(channels=16),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=3,
        test_score_thresh=0.0,
        num_old_classes=2,
    )
    return TaskStandardROIHeads(
        box_in_features=["p2"],
        box_pooler=ROIPooler((7, 7), scales=(0.25,), sampling_ratio=0, pooler_type="ROIAlignV2"),
        box_head=head,
        box_predictor=predictor,
        num_classes=3,
        batch_size_per_image=8,
        positive_fraction=0.5,
        proposal_matcher=Matcher([0.5], [0, 1], allow_low_quality_matches=False),
    )


def _inputs():
    generator = torch.Generator().manual_seed(1)
    features = {"p2": torch.randn(2, 4, SIZE // 4, SIZE // 4, generator=generator)}
    proposals, targets = [], []
    for i in range(2):
        p = Instances((SIZE, SIZE))
        corners = torch.rand(6, 2, generator=generator) * SIZE / 2
        p.proposal_boxes = Boxes(torch.cat([corners, corners + SIZE / 3], dim=1))
        p.objectness_logits = torch.zeros(6)
        proposals.append(p)
        t = Instances((SIZE, SIZE))
        t.gt_boxes = Boxes(torch.tensor([[4.0, 4.0, 20.0, 20.0]]) + i)
        t.gt_classes = torch.tensor([i])
        targets.append(t)
    return features, proposals, targets


def test_detect_of_all_classes_is_the_eval_forward_and_a_range_keeps_its_classes():
    heads = _heads().eval()
    features, proposals, _ = _inputs()
    with torch.no_grad():
        expected = heads(None, features, proposals)[0]
        found = heads.detect(features, proposals)
        kept = heads.detect(features, proposals, classes=(2, 3))
    for e, f, k in zip(expected, found, kept, strict=True):
        assert torch.equal(e.scores, f.scores) and torch.equal(e.pred_classes, f.pred_classes)
        assert len(k) > 0 and (k.pred_classes == 2).all()
        # Class 2's scores are the same softmax column either way ("slice").
        assert torch.equal(k.scores.sort().values, e.scores[e.pred_classes == 2].sort().values)


def test_extra_boxes_are_predicted_in_the_same_call_as_the_sampled_proposals():
    heads = _heads().train()
    features, proposals, targets = _inputs()
    extra = [Boxes(torch.tensor([[0.0, 0.0, 16.0, 16.0]])), Boxes(torch.tensor([[8.0, 8, 30, 30]]))]
    with EventStorage():
        torch.manual_seed(5)
        plain_proposals, plain_losses = heads(None, features, proposals, targets)
        torch.manual_seed(5)  # the same sampling of proposals
        sampled, losses, outputs = heads.forward_train(None, features, proposals, targets, extra)
        assert heads.forward_train(None, features, proposals, targets)[2] is None
    for key, value in plain_losses.items():
        assert torch.allclose(losses[key], value, rtol=1e-5, atol=1e-7), key
    assert [len(p) for p in sampled] == [len(p) for p in plain_proposals]
    alone = heads.predict_pooled(heads.pool(features, extra))
    assert torch.allclose(outputs.scores, alone.scores, atol=1e-6)
    assert torch.allclose(outputs.deltas, alone.deltas, atol=1e-6)
    assert outputs.pooled.shape == (2, 4, 7, 7) and outputs.roi_features is None
    assert outputs.hidden.shape == (2, 16)


def test_pool_parts_equals_pooling_each_part_alone():
    heads = _heads()
    features, proposals, _ = _inputs()
    boxes = [p.proposal_boxes for p in proposals]
    halves = [[b[:2] for b in boxes], [b[2:] for b in boxes]]
    first, second = pool_parts(lambda b: heads.pool(features, b), halves)
    assert torch.equal(first, heads.pool(features, halves[0]))
    assert torch.equal(second, heads.pool(features, halves[1]))
    with pytest.raises(ValueError):
        pool_parts(lambda b: heads.pool(features, b), [boxes, boxes[:1]])
