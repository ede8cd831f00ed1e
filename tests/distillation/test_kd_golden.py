"""Golden values of every KD loss against the independent NumPy references of kd_reference.py."""

import math

import kd_reference as ref
import numpy as np
import pytest
import torch

from ykd.distillation import functional as KF


def _logits(seed, rows=7, classes=6, scale=3.0):
    g = np.random.default_rng(seed)
    return g.normal(size=(rows, classes)) * scale, g.normal(size=(rows, classes)) * scale


def _targets(seed, rows=7, classes=6):
    return np.random.default_rng(seed + 100).integers(0, classes, size=rows)


# name -> (torch call, NumPy reference), both on (student, teacher, targets, temperature).
PAIRED = {
    "kl": (lambda s, t, y, T: KF.kl_loss(s, t, temperature=T), lambda s, t, y, T: ref.kl(s, t, T)),
    "rkl": (
        lambda s, t, y, T: KF.rkl_loss(s, t, temperature=T),
        lambda s, t, y, T: ref.rkl(s, t, T),
    ),
    "js": (lambda s, t, y, T: KF.js_loss(s, t, temperature=T), lambda s, t, y, T: ref.js(s, t, T)),
    "tv": (lambda s, t, y, T: KF.tv_loss(s, t, temperature=T), lambda s, t, y, T: ref.tv(s, t, T)),
    "skew_kl": (
        lambda s, t, y, T: KF.skew_kl_loss(s, t, temperature=T, skew=0.3),
        lambda s, t, y, T: ref.skew_kl(s, t, T, lam=0.3),
    ),
    "skew_rkl": (
        lambda s, t, y, T: KF.skew_rkl_loss(s, t, temperature=T, skew=0.3),
        lambda s, t, y, T: ref.skew_rkl(s, t, T, lam=0.3),
    ),
    "bdkd_hard": (
        lambda s, t, y, T: KF.bdkd_loss(s, t, temperature=T),
        lambda s, t, y, T: ref.bdkd(s, t, T),
    ),
    "bdkd_smooth": (
        lambda s, t, y, T: KF.bdkd_loss(s, t, temperature=T, weighting="smooth", gap_scale=0.5),
        lambda s, t, y, T: ref.bdkd(s, t, T, weighting="smooth", scale=0.5),
    ),
    "dkd": (
        lambda s, t, y, T: KF.dkd_loss(s, t, temperature=T, targets=y, alpha=0.7, beta=2.0),
        lambda s, t, y, T: ref.dkd(s, t, y, T, alpha=0.7, beta=2.0),
    ),
    "nkd": (
        lambda s, t, y, T: KF.nkd_loss(s, t, temperature=T, targets=y, gamma=1.5),
        lambda s, t, y, T: ref.nkd(s, t, y, T, gamma=1.5),
    ),
    "ukd": (
        lambda s, t, y, T: KF.ukd_loss(s, t, temperature=T),
        lambda s, t, y, T: ref.ukd(s, t, T),
    ),
    "l2": (lambda s, t, y, T: KF.l2_loss(s, t, temperature=T), lambda s, t, y, T: ref.l2(s, t)),
}


@pytest.mark.parametrize("name", sorted(PAIRED))
@pytest.mark.parametrize("seed,temperature", [(0, 1.0), (1, 2.0), (2, 4.0)])
def test_per_sample_losses_match_reference(name, seed, temperature):
    s, t = _logits(seed)
    y = _targets(seed)
    ours, theirs = PAIRED[name]
    args = (torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32))
    value = ours(*args, torch.tensor(y), temperature)
    expected = theirs(s, t, y, temperature).mean()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=2e-5, abs=1e-6)


def test_reductions_match_reference():
    s, t = _logits(3)
    expected = ref.js(s, t, 2.0)
    s, t = torch.tensor(s), torch.tensor(t)
    per_sample = KF.js_loss(s, t, temperature=2.0, reduction="none")
    assert per_sample.shape == (7,)
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-10)
    total = KF.js_loss(s, t, temperature=2.0, reduction="sum")
    assert total.item() == pytest.approx(expected.sum(), rel=1e-10)


def test_ukd_with_new_classes_matches_reference():
    g = np.random.default_rng(4)
    s, t = g.normal(size=(9, 8)) * 2, g.normal(size=(9, 5)) * 2  # 4 old, 3 new, bg
    value = KF.ukd_loss(torch.tensor(s), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(value.numpy(), ref.ukd(s, t), rtol=1e-10)


def test_dkd_and_nkd_default_to_teacher_argmax():
    s, t = _logits(5)
    y = t.argmax(axis=1)
    s_, t_ = torch.tensor(s), torch.tensor(t)
    assert KF.dkd_loss(s_, t_).item() == pytest.approx(ref.dkd(s, t, y).mean(), rel=1e-10)
    assert KF.nkd_loss(s_, t_).item() == pytest.approx(ref.nkd(s, t, y).mean(), rel=1e-10)


def test_uskd_matches_reference():
    s, t = _logits(6, rows=11, classes=9)
    y = _targets(6, rows=11, classes=9)
    value = KF.uskd_loss(torch.tensor(s), torch.tensor(t), targets=torch.tensor(y), beta=0.5)
    assert value.item() == pytest.approx(ref.uskd(s, y, beta=0.5).mean(), rel=1e-10)


def test_uskd_maps_teacher_background_to_student_background():
    g = np.random.default_rng(7)
    s, t = (
        g.normal(size=(6, 7)),
        g.normal(size=(6, 4)),
    )  # teacher: 3 old + bg; student: 3 old, 3 new, bg
    t[:3, -1] = 10.0  # teacher says background
    y = t.argmax(axis=1)
    y[y == 3] = 6
    value = KF.uskd_loss(torch.tensor(s), torch.tensor(t))
    assert value.item() == pytest.approx(ref.uskd(s, y).mean(), rel=1e-10)


@pytest.mark.parametrize("seed,temperature,eps", [(0, 1.0, 0.1), (1, 2.0, 0.05), (2, 1.0, 0.5)])
def test_sinkd_matches_reference(seed, temperature, eps):
    s, t = _logits(seed, rows=12, classes=5)
    value = KF.sinkd_loss(
        torch.tensor(s, dtype=torch.float32),
        torch.tensor(t, dtype=torch.float32),
        temperature=temperature,
        eps=eps,
    )
    assert value.item() == pytest.approx(ref.sinkhorn(s, t, temperature, eps), rel=1e-4)


def test_sinkd_per_image_groups_match_reference():
    s, t = _logits(8, rows=10, classes=4)
    sizes = [3, 0, 7]
    value = KF.sinkd_loss(
        torch.tensor(s), torch.tensor(t), num_rois_per_image=sizes, iters=30, reduction="none"
    )
    expected = [ref.sinkhorn(s[:3], t[:3], iters=30), ref.sinkhorn(s[3:], t[3:], iters=30)]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-9)


def test_sinkd_adds_kl():
    s, t = _logits(9, rows=8, classes=4)
    value = KF.sinkd_loss(torch.tensor(s), torch.tensor(t), kl_weight=0.5, temperature=2.0)
    expected = ref.sinkhorn(s, t, 2.0) + 0.5 * ref.kl(s, t, 2.0).mean()
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_rdist_per_image_matches_reference():
    g = np.random.default_rng(10)
    s, t = g.normal(size=(10, 7)), g.normal(size=(10, 4))  # different class spaces
    value = KF.rdist_loss(
        torch.tensor(s), torch.tensor(t), num_rois_per_image=[4, 6], reduction="none"
    )
    expected = [ref.rdist(s[:4], t[:4]), ref.rdist(s[4:], t[4:])]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-9)
    equal = KF.rdist_loss(torch.tensor(s), torch.tensor(t), num_rois_per_image=5)
    expected = (ref.rdist(s[:5], t[:5]) + ref.rdist(s[5:], t[5:])) / 2
    assert equal.item() == pytest.approx(expected, rel=1e-9)


# ---- hand-derived values ----

IDENTICAL_IS_ZERO = ["kl", "rkl", "js", "tv", "skew_kl", "skew_rkl", "bdkd", "dkd", "l2"]


@pytest.mark.parametrize("name", IDENTICAL_IS_ZERO)
def test_identical_distributions_give_zero(name):
    s, _ = _logits(11)
    s = torch.tensor(s)
    shifted = s + torch.arange(7.0).unsqueeze(1)  # same softmax, same mean-normalised logits
    value = getattr(KF, f"{name}_loss")(s, shifted, temperature=2.0)
    assert value.item() == pytest.approx(0.0, abs=1e-12)


def test_two_class_kl_by_hand():
    s = torch.log(torch.tensor([[0.25, 0.75]]))
    t = torch.zeros(1, 2)
    assert KF.kl_loss(s, t).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # DKD with two classes: no non-target distribution (NCKD = 0), TCKD is the KL itself.
    assert KF.dkd_loss(s, t, targets=torch.tensor([1])).item() == pytest.approx(
        0.5 * math.log(4 / 3)
    )


def test_disjoint_distributions_by_hand():
    s = torch.tensor([[0.0, 1e4]])
    t = torch.tensor([[1e4, 0.0]])
    assert KF.js_loss(s, t).item() == pytest.approx(math.log(2), rel=1e-6)
    assert KF.tv_loss(s, t).item() == pytest.approx(1.0, rel=1e-6)
    assert KF.skew_kl_loss(s, t, skew=0.1).item() == pytest.approx(math.log(10), rel=1e-6)


def test_ukd_by_hand():
    # 1 old class, 1 new, bg; uniform student (p = 1/3 each) and teacher (q = 1/2 each):
    # L = -(1/2) [1/2 log(1/3) + 1/2 log(2/3)] = log(9/2) / 4.
    value = KF.ukd_loss(torch.zeros(1, 3), torch.zeros(1, 2))
    assert value.item() == pytest.approx(math.log(4.5) / 4, rel=1e-6)


def test_l2_by_hand():
    value = KF.l2_loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.zeros(1, 3))
    assert value.item() == pytest.approx(2 / 3, rel=1e-6)


def test_nkd_and_uskd_two_classes_by_hand():
    # With two classes the normalised non-target distribution is [1]: only the target term is left.
    s = torch.log(torch.tensor([[0.2, 0.8]]))
    t = torch.log(torch.tensor([[0.4, 0.6]]))
    y = torch.tensor([1])
    assert KF.nkd_loss(s, t, targets=y).item() == pytest.approx(-0.6 * math.log(0.8), rel=1e-6)
    # One sample: the soft target label is s_t² + 1 - s_t² = 1.
    assert KF.uskd_loss(s, t, targets=y).item() == pytest.approx(-math.log(0.8), rel=1e-6)


def test_sinkd_zero_cost_and_single_sample_by_hand():
    same = torch.tensor([[1.0, 2.0, 0.5]]).repeat(6, 1)
    assert KF.sinkd_loss(same, same + 3.0).item() == pytest.approx(0.0, abs=1e-7)
    s, t = torch.tensor([[0.0, 1e4]]), torch.tensor([[1e4, 0.0]])
    assert KF.sinkd_loss(s, t).item() == pytest.approx(2.0, rel=1e-6)  # one sample: P = [[1]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinkd_matches_shuffled_batch_by_hand(dtype):
    # Well-separated one-hot teachers and the same distributions in another order: the plan is the
    # matching permutation / n, at no transport cost, so the value is eps KL(P || a b^T) = eps log n.
    # eps = 0.01 needs the log-sum-exp fallback in fp32 (exp(-2 / eps) underflows), not in fp64.
    t = torch.eye(4, dtype=dtype) * 30.0
    s = t[[2, 0, 3, 1]]
    value = KF.sinkd_loss(s, t, eps=0.01, iters=50)
    assert value.item() == pytest.approx(0.01 * math.log(4), rel=1e-5)
    assert KF.kl_loss(s, t).item() > 20.0


def test_sinkd_small_eps_fallback_matches_reference():
    s, t = _logits(14, rows=10, classes=4)
    value = KF.sinkd_loss(
        torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), eps=0.02
    )
    assert value.item() == pytest.approx(ref.sinkhorn(s, t, eps=0.02), rel=1e-4)


def test_rdist_by_hand():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert KF.rdist_loss(3.0 * t, t).item() == pytest.approx(0.0, abs=1e-7)
    s = torch.tensor(
        [[1.0, 0.0], [1.0, 0.0]]
    )  # A_S all ones, A_T the identity: cos = 2 / (2 * sqrt 2)
    assert KF.rdist_loss(s, t).item() == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)


def test_bdkd_hard_switches_divergence():
    peaked, flat = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.5, 0.0]])
    # Student less confident than the teacher: reverse KL; more confident: forward KL.
    assert KF.bdkd_loss(flat, peaked).item() == pytest.approx(KF.rkl_loss(flat, peaked).item())
    assert KF.bdkd_loss(peaked, flat).item() == pytest.approx(KF.kl_loss(peaked, flat).item())
    custom = KF.bdkd_loss(flat, peaked, weighting=lambda gap: torch.full_like(gap, 0.25))
    mixed = 0.75 * KF.kl_loss(flat, peaked) + 0.25 * KF.rkl_loss(flat, peaked)
    assert custom.item() == pytest.approx(mixed.item())


def test_dkd_decomposes_kl():
    # DKD's identity: KL = TCKD + (1 - p_T,target) NCKD.
    s, t = _logits(12)
    s, t = torch.tensor(s), torch.tensor(t)
    y = torch.tensor(_targets(12))
    tckd = KF.dkd_loss(s, t, targets=y, alpha=1.0, beta=0.0, temperature=2.0, reduction="none")
    nckd = KF.dkd_loss(s, t, targets=y, alpha=0.0, beta=1.0, temperature=2.0, reduction="none")
    p_target = torch.softmax(t / 2.0, dim=1).gather(1, y[:, None]).squeeze(1)
    kl = KF.kl_loss(s, t, temperature=2.0, reduction="none")
    torch.testing.assert_close(kl, tckd + (1 - p_target) * nckd)


def test_skew_limits():
    s, t = _logits(13)
    s, t = torch.tensor(s), torch.tensor(t)
    torch.testing.assert_close(KF.skew_kl_loss(s, t, skew=0.0), KF.kl_loss(s, t))
    torch.testing.assert_close(KF.skew_rkl_loss(s, t, skew=0.0), KF.rkl_loss(s, t))
    assert KF.skew_kl_loss(s, t, skew=1.0).item() == pytest.approx(0.0, abs=1e-12)
