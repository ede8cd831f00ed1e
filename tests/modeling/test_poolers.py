"""The separable ROIAlign backward against torchvision's kernel, alone and inside the model."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from torchvision.ops import roi_align

from ykd.modeling.poolers import SeparableROIAlign, axis_weights, use_separable_roi_align


def _rois(num, height, width, images, generator):
    """Boxes in image pixels (stride 4), some partly or wholly outside the map, some degenerate."""
    corner = torch.rand(num, 2, generator=generator) * torch.tensor([width, height]) * 1.4 - 3
    size = torch.rand(num, 2, generator=generator) * torch.tensor([width, height]) * 0.7
    size[:3] = 0.0
    boxes = torch.cat([corner, corner + size], dim=1) * 4
    index = torch.randint(0, images, (num, 1), generator=generator).double()
    return torch.cat([index, boxes.double()], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
@pytest.mark.parametrize("shape", [(32, 32), (9, 13)])
def test_gradient_equals_torchvision(aligned, sampling_ratio, shape):
    generator = torch.Generator().manual_seed(sampling_ratio + 3 * aligned + shape[1])
    features = torch.randn(3, 5, *shape, dtype=torch.float64, generator=generator)
    features.requires_grad_(True)
    rois = _rois(60, *shape, images=3, generator=generator)
    grad = torch.randn(60, 5, 7, 6, dtype=torch.float64, generator=generator)
    ours = SeparableROIAlign((7, 6), 0.25, sampling_ratio, aligned)(features, rois)
    theirs = roi_align(features, rois, (7, 6), 0.25, sampling_ratio, aligned)
    assert torch.equal(ours, theirs)  # the forward is torchvision's
    (ours_grad,) = torch.autograd.grad(ours, features, grad)
    (their_grad,) = torch.autograd.grad(theirs, features, grad)
    torch.testing.assert_close(ours_grad, their_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sort", [True, False])
def test_blocks_of_rois_and_an_image_without_any(sort):
    """More ROIs per image than a block of the backward, in image order or not, and an image
    (the middle one) without ROIs."""
    generator = torch.Generator().manual_seed(7)
    features = torch.randn(3, 4, 12, 10, dtype=torch.float64, generator=generator)
    features.requires_grad_(True)
    rois = _rois(150, 12, 10, images=2, generator=generator)
    rois[:, 0] *= 2  # images 0 and 2
    if sort:
        rois = rois[rois[:, 0].argsort(stable=True)]
    grad = torch.randn(150, 4, 5, 5, dtype=torch.float64, generator=generator)
    ours = SeparableROIAlign((5, 5), 0.25, 0, True)(features, rois)
    theirs = roi_align(features, rois, (5, 5), 0.25, 0, True)
    (ours_grad,) = torch.autograd.grad(ours, features, grad)
    (their_grad,) = torch.autograd.grad(theirs, features, grad)
    assert torch.equal(ours_grad[1], torch.zeros_like(ours_grad[1]))
    torch.testing.assert_close(ours_grad, their_grad, rtol=0, atol=1e-12)


def test_no_rois_give_a_zero_gradient():
    features = torch.randn(2, 3, 8, 8, requires_grad=True)
    pooled = SeparableROIAlign((2, 2), 1.0, 0)(features, torch.zeros(0, 5))
    (grad,) = torch.autograd.grad(pooled.sum(), features, allow_unused=True)
    assert pooled.shape == (0, 3, 2, 2) and torch.equal(grad, torch.zeros_like(features))


def test_axis_weights_by_hand():
    # One bin from 0.5 to 2.5 on a map of 4: two sampling points, at 1.0 and 2.0 (each wholly on a
    # map cell); a bin starting at 2.0 of length 0.5 on a map of 3: one point at 2.25, past the
    # last cell's centre, so clamped to it; a point more than one pixel outside the map: no weight.
    weights = axis_weights(torch.tensor([0.5]), torch.tensor([2.0]), 1, 4, 0)
    assert torch.allclose(weights, torch.tensor([[[0.0, 0.5, 0.5, 0.0]]]))
    weights = axis_weights(torch.tensor([2.0]), torch.tensor([0.5]), 1, 3, 0)
    assert torch.allclose(weights, torch.tensor([[[0.0, 0.0, 1.0]]]))
    weights = axis_weights(torch.tensor([3.5]), torch.tensor([0.5]), 1, 3, 0)
    assert torch.equal(weights, torch.zeros(1, 1, 3))
    # Two points per bin asked: at 0.25 (0.75 / 0.25 between cells 0 and 1) and 0.75.
    weights = axis_weights(torch.tensor([0.0]), torch.tensor([1.0]), 1, 2, 2)
    assert torch.allclose(weights, torch.tensor([[[0.5, 0.5]]]))


def test_the_model_trains_alike_with_either_backward(make_cfg, make_inputs):
    inputs = make_inputs([[0, 1], [2]])
    grads = {}
    for backward in ("torchvision", "separable"):
        cfg = make_cfg()
        cfg.MODEL.ROI_ALIGN_BACKWARD = backward
        torch.manual_seed(0)
        model = build_model(cfg)
        model.train()
        with EventStorage():
            losses = model(inputs)
        sum(losses.values()).backward()
        grads[backward] = (
            {k: v.item() for k, v in losses.items()},
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]),
        )
    assert grads["torchvision"][0] == grads["separable"][0]
    torch.testing.assert_close(grads["separable"][1], grads["torchvision"][1], rtol=1e-4, atol=1e-6)


def test_unknown_backward_is_a_one_line_error():
    with pytest.raises(ValueError, match="ROI_ALIGN_BACKWARD is 'fast': use") as error:
        use_separable_roi_align(None, "fast")
    assert "\n" not in str(error.value)
