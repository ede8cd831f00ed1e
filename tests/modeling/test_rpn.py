"""TaskRPN's faster eval-mode proposals equal those of Detectron2's own RPN."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.proposal_generator import build_proposal_generator
from detectron2.structures import ImageList

from tests.modeling.tiny_model import tiny_cfg
from ykd.modeling.rpn import AnchorOutputs


@pytest.mark.parametrize("pre_nms, post_nms", [(200, 50), (1000, 300), (30, 500)])
def test_eval_proposals_equal_detectron2_rpn(pre_nms, post_nms):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = pre_nms
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = post_nms
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    shapes = {name: ShapeSpec(channels=32, stride=s) for name, s in strides.items()}
    ours = build_proposal_generator(cfg, shapes)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RPN"
    reference = build_proposal_generator(cfg, shapes)
    reference.load_state_dict(ours.state_dict())
    ours.eval()
    reference.eval()
    features = {name: torch.randn(2, 32, 96 // s, 128 // s) * 3 for name, s in strides.items()}
    images = ImageList(torch.zeros(2, 3, 96, 128), [(96, 128), (80, 100)])
    with torch.no_grad():
        expected, _ = reference(images, features)
        got, _ = ours(images, features)
    for e, g in zip(expected, got, strict=True):
        assert len(g) == len(e) > 0
        assert torch.equal(g.proposal_boxes.tensor, e.proposal_boxes.tensor)
        assert torch.equal(g.objectness_logits, e.objectness_logits)


def test_anchor_outputs_are_named_and_shaped_per_level():
    cfg = tiny_cfg()
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    rpn = build_proposal_generator(
        cfg, {name: ShapeSpec(channels=32, stride=s) for name, s in strides.items()}
    )
    features = {name: torch.randn(2, 32, 64 // s, 64 // s) for name, s in strides.items()}
    outputs = rpn.predict_anchors(features)
    assert isinstance(outputs, AnchorOutputs)
    num_anchors = len(cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0])  # one size per level
    for level, s in enumerate(strides.values()):
        count = (64 // s) ** 2 * num_anchors
        assert len(outputs.anchors[level]) == count
        assert outputs.objectness[level].shape == (2, count)
        assert outputs.deltas[level].shape == (2, count, 4)
    # Given the anchors of another module, the head's outputs are the same.
    again = rpn.predict_anchors(features, outputs.anchors)
    assert again.anchors is outputs.anchors
    assert all(torch.equal(a, b) for a, b in zip(again.objectness, outputs.objectness, strict=True))
