"""Teachers with -inf logits (masked classes): which losses accept them and what they give."""

import kd_reference as ref
import numpy as np
import pytest
import torch

from ykd.distillation import build_kd_loss
from ykd.distillation import functional as KF

INF = float("inf")
MASKED_TEACHER = torch.tensor([2.0, -INF, 1.0, 0.0, -INF], dtype=torch.float64)
KEPT = [0, 2, 3]


def _students(rows=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, 5, generator=g, dtype=torch.float64) * 2).requires_grad_(True)


def _entropy(logits):
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p.clamp(min=-1e300)).sum(dim=1)


def test_bdkd_forward_branch_is_not_poisoned_by_the_infinite_reverse_kl():
    # Students sharper than the teacher (H_S < H_T): "hard" weighting gives w = 0 everywhere, the
    # reverse KL (+inf with a masked teacher class) gets weight 0 and must not turn the loss NaN.
    teacher = MASKED_TEACHER.repeat(4, 1)
    student = torch.tensor([[9.0, 0.0, 1.0, 0.5, 0.0]], dtype=torch.float64).repeat(4, 1)
    student = (student + torch.arange(4, dtype=torch.float64)[:, None] * 0.1).requires_grad_(True)
    assert (_entropy(student) < _entropy(teacher)).all()
    value = KF.bdkd_loss(student, teacher, weighting="hard")
    value.backward()
    expected = ref.kl(student.detach().numpy(), teacher.numpy()).mean()
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert torch.isfinite(student.grad).all()


def test_bdkd_is_inf_only_on_samples_using_the_reverse_kl():
    teacher = MASKED_TEACHER.repeat(2, 1)
    sharp = [9.0, 0.0, 1.0, 0.5, 0.0]  # H_S < H_T: forward KL (w = 0)
    flat = [0.0, 0.0, 0.0, 0.0, 0.0]  # H_S > H_T: reverse KL (w = 1), +inf on a masked class
    student = torch.tensor([sharp, flat], dtype=torch.float64)
    values = KF.bdkd_loss(student, teacher, weighting="hard", reduction="none")
    assert values[0].item() == pytest.approx(ref.kl(student[:1].numpy(), teacher[:1].numpy())[0])
    assert values[1].item() == INF


def test_rkl_is_inf_with_a_masked_teacher_and_finite_with_an_underflowing_one():
    student = _students()
    masked = MASKED_TEACHER.repeat(6, 1)
    assert KF.rkl_loss(student, masked).item() == INF
    underflowing = masked.clamp(min=-1e4)
    assert (torch.softmax(underflowing, dim=1) == 0).any()
    assert torch.isfinite(KF.rkl_loss(student, underflowing))


@pytest.mark.parametrize("center", ["compared", "student"])
def test_l2_leaves_masked_teacher_classes_out(center):
    # Teacher over {2 old, bg} plus two masked columns; with "student" the student also has 2 new
    # classes (columns 3, 4) before its bg.
    teacher = MASKED_TEACHER.repeat(6, 1)
    student = _students() if center == "compared" else _students().detach().repeat(1, 2)[:, :7]
    student.requires_grad_(True)
    value = KF.l2_loss(student, teacher, center=center, reduction="none")
    value.sum().backward()
    s, t = student.detach().numpy(), teacher.numpy()
    if center == "compared":
        expected = ref.l2(s[:, KEPT], t[:, KEPT])
    else:
        # Centred over all 7 student columns; the teacher's 4 old columns and its bg are the
        # student's columns 0..3 and 6, of which the teacher keeps 0, 2 and 3 (its bg is masked).
        sc = s - s.mean(axis=1, keepdims=True)
        tk = t[:, KEPT]
        diff = sc[:, KEPT] - (tk - tk.mean(axis=1, keepdims=True))
        expected = (diff**2).mean(axis=1)
    np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-12)
    assert torch.isfinite(student.grad).all()


def test_rdist_masked_teacher_equals_teacher_without_those_classes():
    student = _students(rows=8)
    teacher = (
        MASKED_TEACHER.repeat(8, 1) + torch.linspace(0.0, 3.0, 8, dtype=torch.float64)[:, None]
    )
    value = KF.rdist_loss(student, teacher, num_rois_per_image=4)
    value.backward()
    without = KF.rdist_loss(student.detach(), teacher[:, KEPT], num_rois_per_image=4)
    torch.testing.assert_close(value.detach(), without)
    assert torch.isfinite(student.grad).all()


def test_module_losses_accept_masked_teachers_through_the_adapters():
    # ILOD's slice and MMA's fold with a masked old class.
    student = _students(rows=6, seed=3).detach().repeat(1, 2)[:, :7].requires_grad_(True)
    teacher = torch.tensor([[1.0, -INF, 0.5, 2.0]], dtype=torch.float64).repeat(6, 1)
    for name in ("l2", "kl", "ukd"):
        value = build_kd_loss(name)(student, teacher)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(student.grad).all(), name
        student.grad = None
