"""UniqueMaskHead built from kwargs: the head's loss, growth with the classes, the teacher's copy."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from ykd.modeling.mask_head import UniqueMaskHead


def _mask_head(class_agnostic: bool = False) -> UniqueMaskHead:
    torch.manual_seed(0)
    head = MaskRCNNConvUpsampleHead(
        ShapeSpec(channels=4, height=7, width=7),
        num_classes=1 if class_agnostic else 3,
        conv_dims=[4, 4],
    )
    pooler = ROIPooler((7, 7), scales=(0.25,), sampling_ratio=0, pooler_type="ROIAlignV2")
    return UniqueMaskHead(
        head=head, in_features=["p2"], pooler=pooler, class_agnostic=class_agnostic
    )


def _proposals() -> list[Instances]:
    p = Instances((32, 32))
    p.proposal_boxes = Boxes(torch.tensor([[2.0, 2.0, 20.0, 20.0], [8.0, 4.0, 30.0, 28.0]]))
    p.gt_classes = torch.tensor([0, 2])
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[:, 4:16, 4:16] = True
    p.gt_masks = BitMasks(masks)
    return [p]


def test_losses_from_logits_equal_the_heads_training_call():
    mask_head = _mask_head().train()
    features = {"p2": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    proposals = _proposals()
    roi_features = mask_head.roi_features(features, [p.proposal_boxes for p in proposals], None)
    assert roi_features.shape == (2, 4, 7, 7)
    with EventStorage():
        expected = mask_head(roi_features, proposals)["loss_mask"]
        logits = mask_head.logits(roi_features)
        found = mask_head.losses(logits, proposals)["loss_mask"]
    assert logits.shape == (2, 3, 14, 14)
    assert torch.allclose(found, expected)


def test_growth_keeps_the_old_masks_and_the_teacher_copy_keeps_the_first_classes():
    mask_head = _mask_head()
    predictor = mask_head.head.predictor
    weight, bias = predictor.weight.clone(), predictor.bias.clone()
    mask_head.expand_classes(2)
    grown = mask_head.head.predictor
    assert grown.out_channels == 5
    assert torch.equal(grown.weight[:3], weight) and torch.equal(grown.bias[:3], bias)
    teacher = mask_head.with_num_classes(3)
    assert teacher.head.predictor.out_channels == 3
    assert torch.equal(teacher.head.predictor.weight, weight)
    assert mask_head.head.predictor.out_channels == 5  # a copy: the student's is unchanged
    x = torch.randn(2, 4, 7, 7)
    assert torch.allclose(teacher.logits(x), mask_head.logits(x)[:, :3], atol=1e-6)


@pytest.mark.parametrize("num_new_classes", [1, 3])
def test_a_class_agnostic_head_does_not_grow(num_new_classes):
    mask_head = _mask_head(class_agnostic=True)
    mask_head.expand_classes(num_new_classes)
    assert mask_head.head.predictor.out_channels == 1
