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


def _losses_and_grads(model, inputs, weights):
    """Losses (weights applied) and the trainable parameters' gradients of one training call."""
    model.set_loss_weights(weights)
    model.zero_grad()
    torch.manual_seed(0)
    with EventStorage():
        losses = model(inputs)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def test_zero_weight_distillation_is_fine_tuning(make_cfg, make_inputs):
    """With every KD term at weight 0 the teacher never runs: the losses and gradients are those
    of fine-tuning (the same model without distillation), the KD terms logged as 0."""
    model = build_model(make_cfg(classes_per_task=[3, 2])).train()
    cfg = make_cfg(classes_per_task=[3, 2])
    for key in ("CLS", "BOX", "MASK", "RPN"):
        cfg.MODEL.YKD.KD_WEIGHTS[key] = 0.0
    fine_tuning = build_model(cfg).train()
    fine_tuning.load_state_dict(model.state_dict(), strict=False)
    inputs = make_inputs([[3, 4]])
    calls = []
    model.distiller.propose = lambda *args, **kwargs: calls.append(args)
    losses, grads = _losses_and_grads(model, inputs, {"loss_kd": 0.0})
    expected, expected_grads = _losses_and_grads(fine_tuning, inputs, {})
    assert calls == []
    kd_terms = {k for k in losses if k.startswith("loss_kd")}
    assert kd_terms == {"loss_kd_cls", "loss_kd_box", "loss_kd_mask", "loss_kd_rpn"}
    assert all(losses[k].item() == 0.0 for k in kd_terms)
    assert set(losses) - kd_terms == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(losses[name], value, msg=name)
    assert grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_a_zero_weight_term_is_skipped_the_others_unchanged(make_cfg, make_inputs):
    """Mask KD at weight 0: no mask distillation boxes, ``loss_kd_mask`` 0, and every other loss
    and gradient as when all terms are computed with mask KD's gradient removed."""
    model = build_model(make_cfg(classes_per_task=[3, 2])).train()
    inputs = make_inputs([[3, 4]])
    losses, grads = _losses_and_grads(model, inputs, {"loss_kd_mask": 0.0})
    all_terms, _ = _losses_and_grads(model, inputs, {})
    _, expected_grads = _losses_and_grads(model, inputs, {"loss_kd_mask": 1e-30})
    assert losses["loss_kd_mask"].item() == 0.0 and all_terms["loss_kd_mask"].item() > 0.0
    assert set(losses) == set(all_terms)
    for name, value in all_terms.items():
        if name != "loss_kd_mask":
            torch.testing.assert_close(losses[name], value, msg=name)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)
