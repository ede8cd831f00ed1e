"""
Independent NumPy (float64) references of the KD losses, written from the papers' formulas without
calling `ykd`. Each returns the per-sample (or per-group) values; the tests reduce them.
"""

import numpy as np


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _kl(p, q):
    """Row-wise KL(p || q) of probabilities, with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=1)


def _entropy(p):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def kl(s, t, T=1.0):
    return T**2 * _kl(softmax(t / T), softmax(s / T))


def rkl(s, t, T=1.0):
    return T**2 * _kl(softmax(s / T), softmax(t / T))


def js(s, t, T=1.0):
    p, q = softmax(t / T), softmax(s / T)
    m = (p + q) / 2
    return T**2 * (_kl(p, m) + _kl(q, m)) / 2


def tv(s, t, T=1.0):
    return T**2 * 0.5 * np.abs(softmax(t / T) - softmax(s / T)).sum(axis=1)


def skew_kl(s, t, T=1.0, lam=0.1):
    p, q = softmax(t / T), softmax(s / T)
    return T**2 * _kl(p, lam * p + (1 - lam) * q)


def skew_rkl(s, t, T=1.0, lam=0.1):
    p, q = softmax(t / T), softmax(s / T)
    return T**2 * _kl(q, lam * q + (1 - lam) * p)


def bdkd(s, t, T=1.0, weighting="hard", scale=1.0):
    p, q = softmax(t / T), softmax(s / T)
    gap = (_entropy(q) - _entropy(p)) / scale
    w = (gap > 0).astype(float) if weighting == "hard" else 1 / (1 + np.exp(-gap))
    return T**2 * ((1 - w) * _kl(p, q) + w * _kl(q, p))


def ukd(s, t, T=1.0):
    """MMA's UnbiasedKnowledgeDistillationLoss, rewritten with bg as the last column."""
    num_old = t.shape[1] - 1
    z = s / T
    den = logsumexp(z, axis=1)
    out_old = z[:, :num_old] - den[:, None]
    out_bg = logsumexp(z[:, num_old:], axis=1) - den
    labels = softmax(t / T)
    loss = (labels[:, -1] * out_bg + (labels[:, :-1] * out_old).sum(axis=1)) / t.shape[1]
    return -(T**2) * loss


def l2(s, t):
    return ((s - s.mean(axis=1, keepdims=True) - t + t.mean(axis=1, keepdims=True)) ** 2).mean(
        axis=1
    )


def dkd(s, t, y, T=1.0, alpha=1.0, beta=8.0):
    """mdistiller's formulation: masks and a -1000 logit shift for the non-target distribution."""
    gt = np.zeros_like(s, dtype=bool)
    gt[np.arange(len(y)), y] = True
    ps, pt = softmax(s / T), softmax(t / T)
    bs = np.stack([ps[gt], ps[~gt].reshape(len(y), -1).sum(axis=1)], axis=1)
    bt = np.stack([pt[gt], pt[~gt].reshape(len(y), -1).sum(axis=1)], axis=1)
    tckd = _kl(bt, bs)
    nckd = _kl(softmax(t / T - 1000.0 * gt), softmax(s / T - 1000.0 * gt))
    return T**2 * (alpha * tckd + beta * nckd)


def nkd(s, t, y, T=1.0, gamma=1.5):
    """yzd-v/cls_KD's NKDLoss: masked non-target logits, renormalised by a softmax at T."""
    n, k = s.shape
    rows = np.arange(n)
    loss_t = -softmax(t)[rows, y] * log_softmax(s)[rows, y]
    mask = np.ones_like(s, dtype=bool)
    mask[rows, y] = False
    s_non = log_softmax(s[mask].reshape(n, k - 1) / T)
    t_non = softmax(t[mask].reshape(n, k - 1) / T)
    return loss_t - gamma * T**2 * (t_non * s_non).sum(axis=1)


def uskd(s, y, alpha=1.0, beta=0.1):
    """yzd-v/cls_KD's USKDLoss for hard labels, ranking the non-target classes by the logits only."""
    n, k = s.shape
    rows = np.arange(n)
    s_t = softmax(s)[rows, y]
    p_t = s_t**2 + 1 - (s_t**2).mean()
    loss_t = -p_t * log_softmax(s)[rows, y]
    mask = np.ones_like(s, dtype=bool)
    mask[rows, y] = False
    s_non = s[mask].reshape(n, k - 1)
    zipf = np.empty_like(s_non)
    for i in range(n):
        order = np.argsort(-s_non[i], kind="stable")
        zipf[i, order] = 1.0 / np.arange(1, k)
    zipf /= zipf.sum(axis=1, keepdims=True)
    loss_non = -(zipf * log_softmax(s_non)).sum(axis=1)
    return alpha * loss_t + beta * loss_non


def sinkhorn(s, t, T=1.0, eps=0.1, iters=20):
    """
    SinKD's Sinkhorn (2018cx/SinKD, loss.py) in its authors' orientation: C_ij = ||p_S,i - p_T,j||_1
    (student rows, teacher columns), K = exp(-C / eps), each iteration divides the rows by their
    sums, then the columns by theirs (unit marginals). Returns ykd's value: the plan of marginals
    1/n is P / n, so <P / n, C> + eps KL(P / n || 1/n²).
    """
    ps, pt = softmax(s / T), softmax(t / T)
    cost = np.abs(ps[:, None, :] - pt[None, :, :]).sum(axis=2)
    plan = np.exp(-cost / eps)
    for _ in range(iters):
        plan = plan / plan.sum(axis=1, keepdims=True)
        plan = plan / plan.sum(axis=0, keepdims=True)
    n = len(s)
    plan = plan / n
    with np.errstate(divide="ignore", invalid="ignore"):
        entropic = np.where(plan > 0, plan * np.log(plan * n**2), 0.0).sum()
    return (plan * cost).sum() + eps * entropic


def l2_student_centred(s, t):
    """ILOD / Faster-ILOD's L2 (MMA's "normalization"): centre each over all its columns, then keep
    the student's old columns and its background (last) column."""
    k = t.shape[1]
    sc = s - s.mean(axis=1, keepdims=True)
    sc = np.concatenate([sc[:, : k - 1], sc[:, -1:]], axis=1)
    return ((sc - t + t.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)


def filtered_l1_features(s, t):
    """Faster-ILOD's normalized_filtered_l1 of one feature map (teacher minus student, clamped)."""
    return np.maximum((t - t.mean()) - (s - s.mean()), 0.0).mean()


def rdist(s, t):
    a_s, a_t = (s @ s.T).ravel(), (t @ t.T).ravel()
    return 1 - a_s @ a_t / (np.linalg.norm(a_s) * np.linalg.norm(a_t))


def fold(s, num_teacher_classes):
    """The student's probabilities over {old, bg} with new classes folded into bg (as logits)."""
    num_old = num_teacher_classes - 1
    p = softmax(s)
    return np.log(np.concatenate([p[:, :num_old], p[:, num_old:].sum(axis=1, keepdims=True)], 1))


def slice_(s, num_teacher_classes):
    return np.concatenate([s[:, : num_teacher_classes - 1], s[:, -1:]], axis=1)
