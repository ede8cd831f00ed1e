"""Golden tests of the Y-KD losses against independent NumPy references."""

import numpy as np
import pytest
import torch

from ykd.modeling.losses import box_kd_loss, mask_kd_loss, rpn_kd_loss, unbiased_cross_entropy


def _lse(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_unbiased_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 6)) * 3  # 3 old, 2 new, bg
    gt = np.array([3, 4, 5, 5, 3, 1])  # new, new, bg, bg, new, an old class
    expected = []
    for z, c in zip(logits, gt, strict=True):
        lse_all = _lse(z[None])[0]
        if c == 5:
            log_p = _lse(np.concatenate([z[:3], z[5:]])[None])[0] - lse_all
        else:
            log_p = z[c] - lse_all
        expected.append(-log_p)
    loss = unbiased_cross_entropy(torch.tensor(logits), torch.tensor(gt), num_old_classes=3)
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-10)


def test_unbiased_cross_entropy_without_old_classes_is_cross_entropy():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    gt = torch.tensor([0, 3, 3, 1, 2])
    expected = torch.nn.functional.cross_entropy(logits, gt)
    assert torch.allclose(unbiased_cross_entropy(logits, gt, 0), expected)


def test_unbiased_cross_entropy_is_stable_for_large_logits():
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]], requires_grad=True)
    loss = unbiased_cross_entropy(logits, torch.tensor([2, 1]), num_old_classes=1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_box_kd_loss_matches_numpy():
    rng = np.random.default_rng(1)
    student, teacher = rng.normal(size=(5, 5 * 4)), rng.normal(size=(5, 3 * 4))
    diff = (student[:, :12] - teacher).reshape(5, 3, 4)
    expected = (diff**2).sum(axis=2).mean()
    assert box_kd_loss(torch.tensor(student), torch.tensor(teacher)).item() == pytest.approx(
        expected
    )
    agnostic = box_kd_loss(torch.tensor(student[:, :4]), torch.tensor(teacher[:, :4])).item()
    assert agnostic == pytest.approx(((student[:, :4] - teacher[:, :4]) ** 2).sum(axis=1).mean())


def test_mask_kd_loss_matches_numpy():
    rng = np.random.default_rng(2)
    student, teacher = rng.normal(size=(4, 5, 3, 3)), rng.normal(size=(4, 3, 3, 3))
    s, q = student[:, :3], _sigmoid(teacher)
    expected = -(q * np.log(_sigmoid(s)) + (1 - q) * np.log(1 - _sigmoid(s))).mean()
    loss = mask_kd_loss(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_rpn_kd_loss_matches_numpy():
    rng = np.random.default_rng(3)
    o_s, o_t = rng.normal(size=(2, 30)), rng.normal(size=(2, 30))
    d_s, d_t = rng.normal(size=(2, 30, 4)), rng.normal(size=(2, 30, 4))
    gap = o_t - o_s
    expected = (np.maximum(gap, 0) ** 2).mean() + (
        ((d_s - d_t) ** 2).sum(axis=2) * (gap > 0.1)
    ).mean()
    args = [torch.tensor(a) for a in (o_s, o_t, d_s, d_t)]
    assert rpn_kd_loss(*args, delta_threshold=0.1).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "loss_fn, student, teacher",
    [
        (box_kd_loss, torch.zeros(0, 8), torch.zeros(0, 4)),
        (mask_kd_loss, torch.zeros(0, 2, 4, 4), torch.zeros(0, 1, 4, 4)),
    ],
)
def test_kd_losses_on_no_roi_are_zero_and_differentiable(loss_fn, student, teacher):
    student.requires_grad_(True)
    loss = loss_fn(student, teacher)
    loss.backward()
    assert loss.item() == 0.0 and student.grad.shape == student.shape


def test_empty_inputs():
    logits = torch.zeros(0, 4, requires_grad=True)
    assert unbiased_cross_entropy(logits, torch.zeros(0, dtype=torch.long), 2).item() == 0.0
    o, d = torch.zeros(1, 0, requires_grad=True), torch.zeros(1, 0, 4)
    assert rpn_kd_loss(o, o.detach(), d, d, delta_threshold=0.1).item() == 0.0
