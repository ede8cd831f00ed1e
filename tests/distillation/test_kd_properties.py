"""Gradients, empty batches, numerical extremes and invariances of every registered KD loss."""

import kd_reference as ref
import numpy as np
import pytest
import torch

from ykd.distillation import KD_LOSS_REGISTRY, build_kd_loss
from ykd.distillation import functional as KF

NAMES = KD_LOSS_REGISTRY.names()
# Losses of one value per sample (ROI); the others are batch-level (sinkd, rdist) or use a batch
# statistic (uskd).
PER_SAMPLE = sorted(set(NAMES) - {"sinkd", "rdist", "uskd"})


def _build(name, **kwargs):
    options = {"temperature": 1.0 if name == "uskd" else 2.0, **kwargs}
    return build_kd_loss(name, **options)


def _inputs(rows=6, classes=5, seed=0, dtype=torch.float64, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, classes, generator=g, dtype=dtype) * scale
    t = torch.randn(rows, classes, generator=g, dtype=dtype) * scale
    y = torch.randint(0, classes, (rows,), generator=g)
    return s, t, y


def _numerical_gradient(fn, x, step=1e-6):
    """Central differences of a scalar NumPy function of the float64 array ``x``."""
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (fn(up) - fn(down)) / (2 * step)
    return grad


# uskd's soft target label is a stop-gradient (the paper's ``p_t.detach()``): checked below.
@pytest.mark.parametrize("name", sorted(set(NAMES) - {"uskd"}))
def test_gradcheck(name):
    s, t, y = _inputs(rows=4, classes=5)
    # sinkd's gradient is the converged transport plan (envelope theorem): iterate to convergence.
    loss = _build(name, **({"iters": 200, "eps": 0.5} if name == "sinkd" else {}))
    s.requires_grad_(True)
    t.requires_grad_(True)

    def fn(student, teacher):
        return loss(student, teacher, targets=y, num_rois_per_image=[3, 1])

    assert torch.autograd.gradcheck(fn, (s, t), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name,adapter",
    [("kl", "fold"), ("js", "slice"), ("l2", "slice"), ("ukd", "none"), ("dkd", "fold")],
)
def test_gradcheck_across_class_spaces(name, adapter):
    s, _, y = _inputs(rows=4, classes=7, seed=1)
    t = _inputs(rows=4, classes=4, seed=2)[1]
    loss = _build(name, adapter=adapter)
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, t, targets=y), (s,), eps=1e-6, atol=1e-6)


def test_uskd_gradient_treats_soft_labels_as_constants():
    s, t, y = _inputs(rows=5, classes=6, seed=3)
    s.requires_grad_(True)
    (grad,) = torch.autograd.grad(KF.uskd_loss(s, t, targets=y, beta=0.5), s)
    s0, rows = s.detach().numpy(), np.arange(5)
    s_t = ref.softmax(s0)[rows, y.numpy()]
    soft_target = s_t**2 + 1 - (s_t**2).mean()
    others = np.ones_like(s0, dtype=bool)
    others[rows, y.numpy()] = False
    ranks = np.argsort(np.argsort(-s0[others].reshape(5, 5), axis=1), axis=1) + 1
    zipf = (1.0 / ranks) / (1.0 / ranks).sum(axis=1, keepdims=True)

    def frozen_label_loss(x):
        target = -soft_target * ref.log_softmax(x)[rows, y.numpy()]
        non_target = -(zipf * ref.log_softmax(x[others].reshape(5, 5))).sum(axis=1)
        return (target + 0.5 * non_target).mean()

    np.testing.assert_allclose(grad.numpy(), _numerical_gradient(frozen_label_loss, s0), atol=1e-7)


def test_bdkd_smooth_gradient_treats_weights_as_constants():
    s, t, _ = _inputs(rows=5, classes=4, seed=4)
    s.requires_grad_(True)
    (grad,) = torch.autograd.grad(KF.bdkd_loss(s, t, weighting="smooth"), s)
    s0, t0 = s.detach().numpy(), t.numpy()
    p, q = ref.softmax(t0), ref.softmax(s0)
    entropy = lambda x: -(x * np.log(x)).sum(axis=1)  # noqa: E731
    w = 1 / (1 + np.exp(-(entropy(q) - entropy(p))))

    def frozen_weight_loss(x):
        return ((1 - w) * ref.kl(x, t0) + w * ref.rkl(x, t0)).mean()

    np.testing.assert_allclose(grad.numpy(), _numerical_gradient(frozen_weight_loss, s0), atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_batch(name, reduction):
    s = torch.zeros(0, 7, requires_grad=True)
    t = torch.zeros(0, 4)
    adapter = {"ukd": "none", "rdist": "none"}.get(name, "slice")
    value = _build(name, reduction=reduction, adapter=adapter)(
        s, t, targets=torch.zeros(0, dtype=torch.long), num_rois_per_image=[]
    )
    assert value.shape == ((0,) if reduction == "none" else ())
    assert value.grad_fn is not None
    value.sum().backward()
    assert s.grad.shape == (0, 7)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_extreme_logits_are_finite(name, temperature):
    g = torch.Generator().manual_seed(3)
    s = (torch.randint(-1, 2, (16, 9), generator=g) * 1e4).float().requires_grad_(True)
    t = torch.randint(-1, 2, (16, 9), generator=g) * 1e4 + torch.randn(16, 9, generator=g)
    if name == "uskd":
        temperature = 1.0
    value = _build(name, temperature=temperature)(s, t, num_rois_per_image=8)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_teacher_with_exact_zero_probabilities(name):
    s, _, y = _inputs(rows=6, classes=5, dtype=torch.float32)
    s.requires_grad_(True)
    t = torch.tensor([[8.0, -1e4, -1e4, 0.0, -1e4]]).repeat(6, 1)
    assert (torch.softmax(t / 2.0, dim=1) == 0).any()
    value = _build(name)(s, t, targets=y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()


# A teacher logit of -inf (a masked class) is accepted by every loss but rkl (+inf, the reverse KL's
# value) and bdkd (+inf on the samples whose reverse-KL weight is positive): test_kd_masked.py.
@pytest.mark.parametrize("name", sorted(set(NAMES) - {"rkl", "bdkd"}))
def test_teacher_with_masked_classes(name):
    s, _, y = _inputs(rows=6, classes=5, dtype=torch.float32)
    s.requires_grad_(True)
    t = torch.tensor([[2.0, -float("inf"), 1.0, 0.0, -float("inf")]]).repeat(6, 1)
    value = _build(name)(s, t, targets=y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_inputs_accumulate_in_fp32(name):
    s, t, y = _inputs(rows=6, classes=5)
    value = _build(name)(s.half(), t.half(), targets=y)
    reference = _build(name)(s.half().float(), t.half().float(), targets=y)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference)


@pytest.mark.parametrize("name", PER_SAMPLE + ["uskd", "sinkd", "rdist"])
def test_permuting_rois_keeps_the_mean(name):
    s, t, y = _inputs(rows=9, classes=6, seed=4)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    loss = _build(name)
    torch.testing.assert_close(loss(s[perm], t[perm], targets=y[perm]), loss(s, t, targets=y))


def test_rdist_is_invariant_within_images_only():
    s, t, _ = _inputs(rows=8, classes=6, seed=5)
    loss = _build("rdist")
    value = loss(s, t, num_rois_per_image=4)
    within = torch.tensor([2, 0, 3, 1, 7, 5, 4, 6])
    torch.testing.assert_close(loss(s[within], t[within], num_rois_per_image=4), value)
    across = torch.tensor([0, 1, 4, 5, 2, 3, 6, 7])
    assert not torch.allclose(loss(s[across], t[across], num_rois_per_image=4), value)


def test_sinkd_compares_sets_kl_compares_pairs():
    s, t, _ = _inputs(rows=8, classes=6, seed=6)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(KF.sinkd_loss(s[perm], t), KF.sinkd_loss(s, t))
    assert not torch.allclose(KF.kl_loss(s[perm], t), KF.kl_loss(s, t))


def test_sinkd_value_does_not_grow_with_the_number_of_rois():
    s, t, _ = _inputs(rows=16, classes=6, seed=7, dtype=torch.float32)
    value = KF.sinkd_loss(s, t)
    # The same empirical distributions with every ROI repeated 8 times: the same value.
    torch.testing.assert_close(KF.sinkd_loss(s.repeat(8, 1), t.repeat(8, 1)), value)
    small = KF.sinkd_loss(*_inputs(rows=64, classes=6, seed=8, dtype=torch.float32)[:2])
    large = KF.sinkd_loss(*_inputs(rows=1024, classes=6, seed=9, dtype=torch.float32)[:2])
    assert 0.5 < large.item() / small.item() < 2.0


@pytest.mark.parametrize("name", sorted(set(NAMES) - {"rdist"}))
def test_adding_a_constant_to_a_row_changes_nothing(name):
    s, t, y = _inputs(rows=6, classes=5, seed=10)
    shift_s = torch.linspace(-50.0, 50.0, 6).unsqueeze(1)
    shift_t = torch.linspace(20.0, -5.0, 6).unsqueeze(1)
    loss = _build(name)
    torch.testing.assert_close(loss(s + shift_s, t + shift_t, targets=y), loss(s, t, targets=y))


def test_rdist_depends_on_row_constants():
    s, t, _ = _inputs(rows=6, classes=5, seed=11)
    shift = torch.linspace(-5.0, 5.0, 6).unsqueeze(1)
    assert not torch.allclose(KF.rdist_loss(s + shift, t), KF.rdist_loss(s, t))
