"""The losses whose authors' code is the reference: SinKD's orientation and ILOD's L2 centring."""

import kd_reference as ref
import numpy as np
import pytest
import torch

from ykd.distillation import build_kd_loss
from ykd.distillation import functional as KF


def _logits(rows, classes, seed, scale):
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(rows, classes, generator=g, dtype=torch.float64) * 2 - 1) * scale
    t = (torch.rand(rows, classes, generator=g, dtype=torch.float64) * 2 - 1) * scale
    return s, t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinkd_matches_the_authors_orientation_on_large_logits(seed):
    s, t = _logits(16, 6, seed, scale=50.0)
    value = KF.sinkd_loss(s, t).item()
    assert value == pytest.approx(ref.sinkhorn(s.numpy(), t.numpy()), rel=1e-9)


def test_sinkd_orientation_changes_the_value_after_twenty_iterations():
    # Scaling the teacher's side first (the transposed cost) is another value before convergence:
    # the test above would not tell the two apart if they coincided.
    s, t = _logits(16, 6, 0, scale=50.0)
    authors, transposed = ref.sinkhorn(s.numpy(), t.numpy()), ref.sinkhorn(t.numpy(), s.numpy())
    assert abs(authors - transposed) > 0.03 * authors
    assert KF.sinkd_loss(s, t).item() == pytest.approx(authors, rel=1e-9)


def test_sinkd_converged_value_does_not_depend_on_the_orientation():
    s, t = _logits(8, 5, 3, scale=3.0)
    converged = KF.sinkd_loss(s, t, eps=0.5, iters=500).item()
    assert converged == pytest.approx(ref.sinkhorn(t.numpy(), s.numpy(), eps=0.5, iters=500))


def test_l2_student_centring_by_hand():
    # Teacher over {2 old, bg}: y = [1, 2, 3], mean 2. The student copies it and gives its one new
    # class logit -50: z = [1, 2, -50, 3], mean (6 - 50) / 4 = -11. Centred over all its columns
    # and sliced: [12, 13, 14]; the teacher centred: [-1, 0, 1]; every difference is 13, so the
    # loss is 13² = 169 = (K_new (mean y + 50) / Ks)². Centred after slicing: an exact copy, 0.
    teacher = torch.tensor([[1.0, 2.0, 3.0]])
    student = torch.tensor([[1.0, 2.0, -50.0, 3.0]])
    assert build_kd_loss("l2", center="student")(student, teacher).item() == pytest.approx(169.0)
    assert build_kd_loss("l2", center="compared")(student, teacher).item() == 0.0


def test_l2_student_centring_voc_15_5():
    # VOC 15-5: Kt = 16, Ks = 21. A copying student with its 5 new logits at -50 gets
    # (5 (m + 50) / 21)² where m is the teacher's mean logit; here m = 0.
    teacher = torch.zeros(1, 16)
    teacher[0, 3], teacher[0, 7] = 4.0, -4.0
    student = torch.cat([teacher[:, :15], torch.full((1, 5), -50.0), teacher[:, 15:]], dim=1)
    value = build_kd_loss("l2", center="student")(student, teacher).item()
    assert value == pytest.approx((5 * 50 / 21) ** 2)
    assert build_kd_loss("l2")(student, teacher).item() == 0.0


def test_l2_student_centring_matches_reference():
    g = torch.Generator().manual_seed(5)
    student = torch.randn(9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(9, 5, generator=g, dtype=torch.float64)
    value = build_kd_loss("l2", center="student", reduction="none")(student, teacher)
    np.testing.assert_allclose(
        value.detach().numpy(), ref.l2_student_centred(student.detach().numpy(), teacher.numpy())
    )
    assert torch.autograd.gradcheck(
        lambda s: KF.l2_loss(s, teacher, center="student"), (student,), eps=1e-6, atol=1e-6
    )


def test_l2_centring_errors():
    with pytest.raises(ValueError, match="center must be one of"):
        build_kd_loss("l2", center="all")
    with pytest.raises(ValueError, match="adapter='slice'"):
        build_kd_loss("l2", center="student", adapter="fold")
    with pytest.raises(ValueError, match="must include the teacher"):
        KF.l2_loss(torch.zeros(2, 3), torch.zeros(2, 4), center="student")


def test_l2_centring_from_config():
    from detectron2.config import get_cfg

    from ykd.config import add_ykd_config
    from ykd.distillation import add_kd_config, build_kd_loss_from_cfg

    cfg = get_cfg()
    add_ykd_config(cfg)
    add_kd_config(cfg)
    cfg.MODEL.YKD.KD_CLS.NAME = "l2"
    assert build_kd_loss_from_cfg(cfg.MODEL.YKD.KD_CLS).options == {"center": "compared"}
    cfg.MODEL.YKD.KD_CLS.L2.CENTER = "student"
    assert build_kd_loss_from_cfg(cfg.MODEL.YKD.KD_CLS).options == {"center": "student"}
