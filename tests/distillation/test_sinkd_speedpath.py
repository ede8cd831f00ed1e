"""
SinKD's value and gradient, per group and for the whole batch, against NumPy (float64): the value
from the port of the authors' iterations (kd_reference.py), the gradient from the same plan held
fixed, dL/dC = P, through |p_S,i - p_T,j| and the softmax. Both ways of iterating (the scalings, and
their logarithms with log-sum-exps for small ε) are covered, in fp32 and fp64.
"""

import math

import kd_reference as ref
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg

from ykd.config import add_ykd_config
from ykd.distillation import add_kd_config, build_kd_loss_from_cfg
from ykd.distillation import functional as KF
from ykd.distillation.functional.batch import _sinkhorn, _uniform_marginals


def _plan(s, t, T, eps, iters):
    """(n, n) plan of marginals 1/n after the authors' iterations (rows: the student's samples)."""
    ps, pt = ref.softmax(s / T), ref.softmax(t / T)
    cost = np.abs(ps[:, None, :] - pt[None, :, :]).sum(axis=2)
    plan = np.exp(-cost / eps)
    for _ in range(iters):
        plan = plan / plan.sum(axis=1, keepdims=True)
        plan = plan / plan.sum(axis=0, keepdims=True)
    return plan / len(s)


def _softmax_backward(p, grad_p, T):
    """d/dz of sum(grad_p * softmax(z / T)), p = softmax(z / T), row by row: (n, K)."""
    return p * (grad_p - (p * grad_p).sum(axis=1, keepdims=True)) / T


def _reference(s, t, sizes, T, eps, iters):
    """
    Per-group values (G,) and the gradients (R, K) of their mean with respect to the student's and
    the teacher's logits, the plan held fixed: dL/dp_S,i = sum_j P_ij sign(p_S,i - p_T,j).
    """
    values, grad_s, grad_t = [], np.zeros_like(s), np.zeros_like(t)
    groups = [n for n in sizes if n > 0]
    start = 0
    for n in sizes:
        rows = slice(start, start + n)
        start += n
        if n == 0:
            continue
        values.append(ref.sinkhorn(s[rows], t[rows], T, eps, iters))
        plan = _plan(s[rows], t[rows], T, eps, iters) / len(groups)
        ps, pt = ref.softmax(s[rows] / T), ref.softmax(t[rows] / T)
        sign = np.sign(ps[:, None, :] - pt[None, :, :])
        grad_s[rows] = _softmax_backward(ps, (plan[:, :, None] * sign).sum(axis=1), T)
        grad_t[rows] = _softmax_backward(pt, -(plan[:, :, None] * sign).sum(axis=0), T)
    return np.array(values), grad_s, grad_t


def _logits(seed, rows, classes, masked=0):
    g = np.random.default_rng(seed)
    s, t = g.normal(size=(rows, classes)) * 3.0, g.normal(size=(rows, classes)) * 3.0
    t[:, :masked] = -math.inf  # classes the teacher does not know
    return s, t


def _ours(s, t, dtype, **options):
    """Per-group values and the gradients of their mean, in ``dtype``."""
    s = torch.tensor(s, dtype=dtype, requires_grad=True)
    t = torch.tensor(t, dtype=dtype, requires_grad=True)
    values = KF.sinkd_loss(s, t, reduction="none", **options)
    values.mean().backward()
    return values.detach().numpy(), s.grad.numpy(), t.grad.numpy()


# dtype -> (tolerance, ε of the scaling iterations, ε of the log-sum-exp ones): the switch is at
# 4 / ε = -log(finfo.tiny) - 8, ε = 0.050 in fp32 and 0.0057 in fp64.
DTYPES = {torch.float32: (1e-6, 0.1, 0.03), torch.float64: (1e-10, 0.1, 0.005)}
# name -> (num_rois_per_image of the call, the group sizes it means).
GROUPS = {
    "equal": (8, [8] * 6),
    "unequal": ([3, 0, 12, 1, 15], [3, 0, 12, 1, 15]),
    "one_group": (None, [24]),
}


@pytest.mark.parametrize("dtype", list(DTYPES), ids=["fp32", "fp64"])
@pytest.mark.parametrize("path", ["scalings", "log_sum_exp"])
@pytest.mark.parametrize("groups", list(GROUPS))
@pytest.mark.parametrize("masked", [0, 2], ids=["all_classes", "masked_teacher"])
def test_sinkd_value_and_gradient_match_numpy(dtype, path, groups, masked):
    tol, eps_scalings, eps_lse = DTYPES[dtype]
    eps = eps_scalings if path == "scalings" else eps_lse
    num_rois_per_image, sizes = GROUPS[groups]
    s, t = _logits(len(sizes) + 10 * masked, sum(sizes), 6, masked)
    temperature = 2.0
    values, grad_s, grad_t = _ours(
        s, t, dtype, num_rois_per_image=num_rois_per_image, eps=eps, temperature=temperature
    )
    expected, expected_s, expected_t = _reference(s, t, sizes, temperature, eps, 20)
    np.testing.assert_allclose(values, expected, rtol=tol)
    for ours, theirs in ((grad_s, expected_s), (grad_t, expected_t)):
        np.testing.assert_allclose(ours, theirs, rtol=10 * tol, atol=tol * np.abs(theirs).max())
    if masked:
        assert np.all(grad_t[:, :masked] == 0.0)


@pytest.mark.parametrize("num_rois_per_image", [64, None], ids=["per_image", "whole_batch"])
def test_sinkd_benchmark_size_matches_numpy(num_rois_per_image):
    # bench/kd_losses.py's size: 512 ROIs x 21 classes, 64 per image (8 groups) or one group.
    s, t = _logits(20, 512, 21)
    value, grad_s, grad_t = _ours(s, t, torch.float64, num_rois_per_image=num_rois_per_image)
    sizes = [512] if num_rois_per_image is None else [64] * 8
    expected, expected_s, expected_t = _reference(s, t, sizes, 1.0, 0.1, 20)
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    np.testing.assert_allclose(grad_s, expected_s, rtol=1e-9, atol=1e-10 * np.abs(expected_s).max())
    np.testing.assert_allclose(grad_t, expected_t, rtol=1e-9, atol=1e-10 * np.abs(expected_t).max())


def test_sinkd_iteration_paths_give_the_same_plan():
    # The same iterations on the scalings and on their logarithms (forced by a kernel floor below
    # the normal range), with padding: equal in fp64.
    g = torch.Generator().manual_seed(0)
    sizes = [5, 9, 1]
    cost = torch.rand(3, 9, 9, generator=g, dtype=torch.float64) * 2
    w = _uniform_marginals(sizes, cost)
    scalings = _sinkhorn(cost / -0.1, w, 20, kernel_floor=-20.0)
    logs = _sinkhorn(cost / -0.1, w, 20, kernel_floor=-1e4)
    for a, b in zip(scalings, logs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0.0)
    plan = scalings[0]
    assert torch.all(plan[0, 5:] == 0) and torch.all(plan[0, :, 5:] == 0)
    torch.testing.assert_close(plan.sum(dim=1), w, rtol=1e-12, atol=0.0)  # exact column sums


def test_sinkd_transports_per_image_by_default():
    cfg = get_cfg()
    add_ykd_config(cfg)
    add_kd_config(cfg)
    cfg.MODEL.YKD.KD_CLS.NAME = "sinkd"
    loss_fn = build_kd_loss_from_cfg(cfg.MODEL.YKD.KD_CLS)
    s, t = (torch.tensor(x) for x in _logits(30, 24, 6))
    per_image = [loss_fn(s[i : i + 8], t[i : i + 8]) for i in (0, 8, 16)]
    torch.testing.assert_close(loss_fn(s, t, num_rois_per_image=8), sum(per_image) / 3)
    assert not torch.allclose(loss_fn(s, t, num_rois_per_image=8), loss_fn(s, t))
