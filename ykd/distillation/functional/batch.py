"""
Batch-level losses, which compare the teacher's and the student's outputs across the samples of a
group (the whole batch, or the ROIs of one image) rather than sample by sample: SinKD and RDist.

Groups are consecutive rows: ``num_rois_per_image`` is an int (equal counts), a list of counts, or None
(one group). The loss gives one value per non-empty group; "mean" and "sum" reduce over the groups.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import as_float, check_logits, empty_loss, reduce_loss
from .divergences import kl_loss

__all__ = ["rdist_loss", "sinkd_loss"]


def _group_sizes(name: str, num_rois_per_image: int | list[int] | None, num_rows: int) -> list[int]:
    """Non-empty group sizes summing to ``num_rows``."""
    if num_rois_per_image is None:
        return [num_rows]
    if isinstance(num_rois_per_image, int):
        if num_rois_per_image <= 0 or num_rows % num_rois_per_image:
            raise ValueError(
                f"{name}: num_rois_per_image={num_rois_per_image} does not divide the R={num_rows} rows"
            )
        return [num_rois_per_image] * (num_rows // num_rois_per_image)
    sizes = [int(n) for n in num_rois_per_image]
    if sum(sizes) != num_rows or min(sizes, default=0) < 0:
        raise ValueError(
            f"{name}: num_rois_per_image {sizes} does not add up to the R={num_rows} rows"
        )
    return [n for n in sizes if n > 0]


def _pad_groups(x: Tensor, sizes: list[int]) -> Tensor:
    """(R, K) rows split into groups -> (G, n_max, K), zero-padded (a view when the sizes are equal)."""
    n_max = max(sizes)
    if all(n == n_max for n in sizes):
        return x.view(len(sizes), n_max, x.shape[1])
    return torch.stack([F.pad(g, (0, 0, 0, n_max - g.shape[0])) for g in torch.split(x, sizes)])


def _uniform_marginals(sizes: list[int], like: Tensor) -> Tensor:
    """(G, n_max) marginals: 1 / n_g on the rows of group g, 0 on padding."""
    n_max = max(sizes)
    if all(n == n_max for n in sizes):
        return like.new_full((len(sizes), n_max), 1.0 / n_max)
    w = like.new_zeros((len(sizes), n_max))
    for i, n in enumerate(sizes):
        w[i, :n] = 1.0 / n
    return w


def _matvec(kernel: Tensor, x: Tensor) -> Tensor:
    """
    Batched mat-vec sum_j kernel_ij x_j.

    Args:
        kernel: (G, n, n), possibly a transposed view.
        x: (G, n).

    Returns:
        (G, n).
    """
    if kernel.shape[0] == 1:  # one group: a BLAS mat-vec (CPU bmm of mat-vecs is much slower)
        return torch.mv(kernel[0], x[0]).unsqueeze(0)
    return (kernel * x.unsqueeze(1)).sum(dim=2)


def _sinkhorn(
    log_kernel: Tensor, w: Tensor, iters: int, kernel_floor: float
) -> tuple[Tensor, Tensor, Tensor]:
    """
    Sinkhorn iterations with marginals w on both sides, each scaling the rows, then the columns, so
    the plan's column sums are exact. The plan is P_ij = w_i u_i K_ij w_j v_j for K = exp(log_kernel)
    and scalings u, v relative to the marginals, from v = 1: u = 1 / (K diag(w) v), then
    v = 1 / (K^T diag(w) u). u and v are finite and positive on the padding too (w = 0 there keeps
    the padding out of the sums), so log(P_ij / (w_i w_j)) = log_kernel_ij + log u_i + log v_j is
    finite everywhere.

    The iterations run on u and v themselves (two mat-vecs and two reciprocals each) when these
    provably stay normal numbers: the map from v to the next v is monotone and commutes with
    scaling, so an iterate lies between c v* and c' v* for a fixed point v* whenever the start does;
    log K in [-D, 0] (D = -kernel_floor) gives log v* a spread <= D, hence exp(-D) <= v <= exp(D),
    and u, v and the mat-vecs stay in [exp(-2 D), exp(2 D)]. Otherwise (fp32: ε <= 0.05 at C <= 2)
    they run on log u and log v with ``torch.logsumexp``.

    Args:
        log_kernel: (G, n, n) -C / ε.
        w: (G, n) marginals (1 / n_g, 0 on padding).
        iters: number of (row, column) update pairs.
        kernel_floor: a lower bound of ``log_kernel`` (-max C / ε).

    Returns:
        The plan P (G, n, n), log u and log v (G, n).
    """
    if 2.0 * kernel_floor > math.log(torch.finfo(log_kernel.dtype).tiny) + 8.0:
        kernel = log_kernel.exp()
        rows = kernel * w.unsqueeze(1)  # K diag(w)
        cols = kernel.transpose(1, 2) * w.unsqueeze(1)  # K^T diag(w)
        v = torch.ones_like(w)
        for _ in range(iters):
            u = _matvec(rows, v).reciprocal()
            v = _matvec(cols, u).reciprocal()
        plan = rows * (w * u).unsqueeze(2) * v.unsqueeze(1)
        return plan, u.log(), v.log()
    log_w = w.log()
    log_rows = log_kernel + log_w.unsqueeze(1)
    log_cols = log_kernel.transpose(1, 2) + log_w.unsqueeze(1)
    log_v = torch.zeros_like(w)
    for _ in range(iters):
        log_u = -torch.logsumexp(log_rows + log_v.unsqueeze(1), dim=2)
        log_v = -torch.logsumexp(log_cols + log_u.unsqueeze(1), dim=2)
    plan = (log_rows + (log_w + log_u).unsqueeze(2) + log_v.unsqueeze(1)).exp()
    return plan, log_u, log_v


def sinkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    num_rois_per_image: int | list[int] | None = None,
    eps: float = 0.1,
    iters: int = 20,
    kl_weight: float = 0.0,
) -> Tensor:
    """
    SinKD (Cui et al., "Sinkhorn Distance Minimization for Knowledge Distillation", LREC-COLING 2024):
    an entropic optimal-transport cost between the student's and the teacher's batches of class
    distributions. In SinKD's orientation, rows are the student's samples and columns the teacher's:

        C_ij = ||p_S,i - p_T,j||_1,  K = exp(-C / ε),
        P = the plan after ``iters`` Sinkhorn iterations from K, each scaling the rows (students) to
            the marginal a, then the columns (teachers) to b, a = b = 1/n over the n samples,
        L = <P, C> + ε KL(P || a b^T)

    with p softened at T. The value is this objective at the plan of a finite number of iterations:
    the plan's column sums are exactly b and its row sums approach a as the iterations go on, so L
    approaches the entropic minimum min_{P 1 = a, P^T 1 = b} <P, C> + ε KL(P || a b^T) but is not
    it; the orientation matters before convergence (scaling the teacher's side first gives another
    value). SinKD's code returns sum(P' * C) for its plan P' = n P of unit marginals: L = that / n
    + ε KL(P || a b^T), an average cost that does not grow with n (the same distributions with every
    sample repeated give the same value) and is 0 when all the costs are 0.

    The gradient is the plan held fixed, dL/dC = P (the envelope theorem, exact at convergence),
    not the derivative through the iterations that SinKD's autograd takes: the iterations run
    without autograd, in O(n²) memory and at least fp32, on the scalings u, v of the plan
    P = diag(a u) K diag(b v): mat-vecs with K, whose results C <= 2 keeps within
    [exp(-4/ε), exp(4/ε)], normal fp32 numbers for ε > 0.05 (smaller ε iterates log u and log v
    with log-sum-exps). The value is ε (sum_i P_i. log u_i + sum_j P_.j log v_j), which is L since
    log(P_ij / (a_i b_j)) = -C_ij / ε + log u_i + log v_j. ``kl_weight`` adds the per-sample forward
    KL (:func:`kl_loss`).

    The loss compares the two sets of distributions: permuting the student's rows alone (within a
    group) leaves it unchanged. Teachers with -inf logits (masked classes) give finite values.

    Args:
        student_logits: (R, K).
        teacher_logits: (R, K).
        temperature: T > 0 of the softmax (SinKD: 2); the cost is not multiplied by T².
        reduction: "mean" or "sum" over the groups, or "none" for the (G,) values.
        num_rois_per_image: groups of consecutive rows transported separately (see module doc); None =
            the whole batch, as in SinKD.
        eps: entropic regularisation ε > 0 (SinKD: 0.1).
        iters: number of Sinkhorn iterations, each a row then a column scaling (SinKD: 20).
        kl_weight: weight of the added forward KL, 0 for the Sinkhorn cost alone.
    """
    check_logits(
        "sinkd", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    if not eps > 0:
        raise ValueError(f"sinkd: eps must be > 0, got {eps}")
    if iters < 1:
        raise ValueError(f"sinkd: iters must be >= 1, got {iters}")
    num_rows = student_logits.shape[0]
    sizes = _group_sizes("sinkd", num_rois_per_image, num_rows)
    if num_rows == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    p_s = F.softmax(as_float(student_logits) / temperature, dim=1)
    p_t = F.softmax(as_float(teacher_logits) / temperature, dim=1)
    # Rows: the student's samples, columns: the teacher's (SinKD's orientation).
    cost = torch.cdist(_pad_groups(p_s, sizes), _pad_groups(p_t, sizes), p=1)
    with torch.no_grad():
        w = _uniform_marginals(sizes, cost)
        # Costs between probability vectors (or a zero padding row) are at most 2.
        plan, log_u, log_v = _sinkhorn(cost / -eps, w, iters, kernel_floor=-2.0 / eps)
        # <P, C> + ε KL(P || w w^T) = ε (sum_i P_i. log u_i + sum_j P_.j log v_j), from
        # log(P_ij / (w_i w_j)) = -C_ij / ε + log u_i + log v_j.
        row_sums, col_sums = plan.sum(dim=2), plan.sum(dim=1)
        value = eps * ((row_sums * log_u).sum(dim=1) + (col_sums * log_v).sum(dim=1))
    transport = (plan * cost).sum(dim=(1, 2))
    # The objective's value, with the gradient of <P, C> at the plan held fixed.
    loss = value + (transport - transport.detach())
    if kl_weight:
        per_sample = kl_loss(
            student_logits, teacher_logits, temperature=temperature, reduction="none"
        )
        loss = loss + kl_weight * torch.stack([k.mean() for k in torch.split(per_sample, sizes)])
    return reduce_loss(loss, reduction)


def rdist_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    num_rois_per_image: int | list[int] | None = None,
) -> Tensor:
    """
    RDist of LLaVA-KD (Cai et al., "LLaVA-KD: A Framework of Distilling Multimodal Large Language
    Models", 2024): relation distillation, 1 - cosine similarity of the teacher's and the student's
    self-relation matrices, here of the ROI logit vectors of each image:

        A = Z Z^T (n x n, Z the (n, K) logits of the image's ROIs),  L_g = 1 - cos(vec A_T, vec A_S)

    Teacher and student may have different class counts (the matrices are n x n). The value is in
    [0, 2], invariant to a common rescaling of the logits (so the temperature has no effect) and to
    permutations of the ROIs within an image. A teacher's -inf logits (masked classes) are left out
    of its relations (Z_T's masked entries count as 0, i.e. A_T sums over the unmasked classes).

    Args:
        student_logits: (R, Ks).
        teacher_logits: (R, Kt).
        temperature: T > 0; no effect (cosine similarity is scale invariant).
        reduction: "mean" or "sum" over the images, or "none" for the (G,) values.
        num_rois_per_image: ROIs of each image, consecutive in the rows; None = one image.
    """
    check_logits(
        "rdist",
        student_logits,
        teacher_logits,
        temperature=temperature,
        reduction=reduction,
        same_classes=False,
    )
    num_rows = student_logits.shape[0]
    sizes = _group_sizes("rdist", num_rois_per_image, num_rows)
    if num_rows == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    z_s = _pad_groups(as_float(student_logits), sizes)
    teacher_logits = as_float(teacher_logits)
    teacher_logits = teacher_logits.masked_fill(teacher_logits == -math.inf, 0.0)
    z_t = _pad_groups(teacher_logits, sizes)
    rel_s = torch.bmm(z_s, z_s.transpose(1, 2)).flatten(1)
    rel_t = torch.bmm(z_t, z_t.transpose(1, 2)).flatten(1)
    return reduce_loss(1.0 - F.cosine_similarity(rel_s, rel_t, dim=1), reduction)
