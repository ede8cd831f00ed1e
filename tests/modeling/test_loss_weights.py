"""Per-term loss weights: the longest-prefix rule and YKDRCNN's set_loss_weights."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ykd.modeling.loss_weights import check_loss_weights, loss_weight, scale_losses

WEIGHTS = {"loss": 0.0, "loss_kd": 2.0, "loss_kd_box": 0.5, "loss_mask": 3.0}


@pytest.mark.parametrize(
    "name, weight",
    [
        ("loss_cls", 0.0),  # only "loss" matches
        ("loss_kd_cls", 2.0),  # "loss_kd" is longer than "loss"
        ("loss_kd_box", 0.5),  # the full name is the longest key
        ("loss_mask", 3.0),
        ("loss_kd_int_rec", 2.0),
        ("other", 1.0),  # no key matches
    ],
)
def test_longest_matching_key_wins(name, weight):
    assert loss_weight(name, WEIGHTS) == weight


def test_scale_losses():
    losses = {"loss_cls": torch.tensor(4.0), "loss_kd_box": torch.tensor(4.0)}
    scaled = scale_losses(losses, WEIGHTS)
    assert scaled["loss_cls"].item() == 0.0 and scaled["loss_kd_box"].item() == 2.0
    assert scale_losses(losses, {})["loss_cls"] is losses["loss_cls"]


@pytest.mark.parametrize("weights", [{"loss": -1.0}, {"loss": "1"}, {"": 1.0}, {"loss": True}])
def test_check_loss_weights_rejects(weights):
    with pytest.raises(ValueError):
        check_loss_weights(weights)


def test_ykd_rcnn_scales_its_losses(make_cfg, make_inputs):
    model = build_model(make_cfg(classes_per_task=[3, 2])).train()
    inputs = make_inputs([[3, 4]])

    def losses_with(weights):
        model.set_loss_weights(weights)
        torch.manual_seed(0)  # same proposals sampled in both calls
        with EventStorage(), torch.no_grad():
            return model(inputs)

    plain = losses_with({})
    staged = losses_with({"loss": 0.0, "loss_kd": 1.0, "loss_kd_box": 3.0})
    assert set(staged) == set(plain) and any(k.startswith("loss_kd") for k in plain)
    for name, value in plain.items():
        factor = 3.0 if name == "loss_kd_box" else 1.0 if name.startswith("loss_kd") else 0.0
        torch.testing.assert_close(staged[name], value * factor, msg=name)
