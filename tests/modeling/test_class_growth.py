"""The class-row rule and the growth of class-dependent layers, on hand-made tensors."""

import math

import pytest
import torch
from detectron2.layers import Conv2d
from torch import nn

from ykd.modeling.class_growth import (
    copy_class_rows,
    grow_state_dict,
    grown_conv,
    grown_linear,
    has_background_row,
    mib_init_,
    shared_class_rows,
)


def test_the_classifier_keeps_its_background_row_last():
    assert has_background_row("task_modules.1.roi_heads.box_predictor.cls_score.weight")
    assert has_background_row("task_modules.1.roi_heads.box_predictor.cls_score.bias")
    assert not has_background_row("task_modules.1.roi_heads.box_predictor.bbox_pred.weight")
    assert not has_background_row("mask_head.head.predictor.weight")


def test_shared_rows_old_classes_first_and_the_background_of_each():
    # 15 then 20 classes + background: rows 0..14 in both, then row 15 of the first and 20 of
    # the second (each one's background).
    small, large = shared_class_rows([16, 21], background_last=True)
    assert small.tolist() == list(range(15)) + [15]
    assert large.tolist() == list(range(15)) + [20]
    # Without a background row (box regressors, mask predictors): the first min rows.
    rows = shared_class_rows([12, 20, 16], background_last=False)
    assert [r.tolist() for r in rows] == [list(range(12))] * 3


def test_copy_class_rows_takes_old_and_background_rows_from_the_old_tensor():
    old = torch.tensor([[1.0], [2.0], [9.0]])  # 2 classes + background
    fresh = torch.zeros(5, 1)  # 4 classes + background
    grown = copy_class_rows(fresh, old, background_last=True)
    assert grown[:, 0].tolist() == [1.0, 2.0, 0.0, 0.0, 9.0]
    assert copy_class_rows(fresh, old, background_last=False)[:, 0].tolist() == [1, 2, 9, 0, 0]
    assert torch.equal(fresh, torch.zeros(5, 1))  # a new tensor
    with pytest.raises(ValueError, match=r"Cannot grow a tensor of shape \(3, 1\) to \(2, 1\)"):
        copy_class_rows(torch.zeros(2, 1), old, background_last=True)


def test_grown_linear_and_conv_keep_old_rows_and_start_new_ones_afresh():
    torch.manual_seed(0)
    old = nn.Linear(4, 3)  # 2 classes + background
    new = grown_linear(old, 5, std=0.01, background_last=True)
    assert new.out_features == 5
    assert torch.equal(new.weight[:2], old.weight[:2]) and torch.equal(new.weight[4], old.weight[2])
    assert torch.equal(new.bias[[0, 1, 4]], old.bias) and torch.equal(new.bias[2:4], torch.zeros(2))
    assert 0 < new.weight[2:4].std() < 0.05
    conv = Conv2d(8, 3, kernel_size=1)
    grown = grown_conv(conv, 4, std=0.001)
    assert isinstance(grown, Conv2d) and grown.out_channels == 4
    assert torch.equal(grown.weight[:3], conv.weight) and grown.bias[3] == 0


def test_mib_init_keeps_old_class_probabilities_and_splits_the_background():
    torch.manual_seed(0)
    cls_score = grown_linear(nn.Linear(4, 3), 5, std=0.01, background_last=True)
    features = torch.randn(6, 4)
    before = torch.softmax(cls_score(features)[:, [0, 1, 4]], dim=1)  # as the old classifier
    mib_init_(cls_score, num_new_classes=2)
    after = torch.softmax(cls_score(features), dim=1)
    # New rows copy the background's; their biases and the background's are b_bg - log 3, so the
    # 3 logits are z_bg - log 3 and share exp(z_bg): old-class probabilities do not change.
    assert torch.allclose(after[:, :2], before[:, :2], atol=1e-6)
    assert torch.allclose(after[:, 2:], before[:, 2:].expand(-1, 3) / 3, atol=1e-6)
    assert math.isclose(cls_score.bias[2].item(), cls_score.bias[4].item())


def test_grow_state_dict_grows_class_dependent_keys_only():
    previous = {"a.cls_score.bias": torch.tensor([1.0, 9.0]), "a.fc": torch.tensor([3.0])}
    fresh = {"b.cls_score.bias": torch.zeros(3), "b.fc": torch.zeros(1)}
    sources = {"b.cls_score.bias": "a.cls_score.bias", "b.fc": "a.fc"}
    grown = grow_state_dict(previous, fresh, sources, class_dependent=["b.cls_score.bias"])
    assert grown["b.cls_score.bias"].tolist() == [1.0, 0.0, 9.0]
    assert grown["b.fc"].tolist() == [3.0]
    with pytest.raises(ValueError, match="not a class-dependent tensor"):
        grow_state_dict(previous, fresh, sources, class_dependent=[])
    with pytest.raises(KeyError, match="has no 'a.fc'"):
        grow_state_dict(
            {"a.cls_score.bias": previous["a.cls_score.bias"]}, fresh, sources, ["b.cls_score.bias"]
        )
