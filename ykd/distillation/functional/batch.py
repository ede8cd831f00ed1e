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


def _log_uniform_weights(sizes: list[int], like: Tensor) -> Tensor:
    """(G, n_max) log-marginals: -log n_g on the rows of group g, -inf on padding."""
    n_max = max(sizes)
    log_w = like.new_full((len(sizes), n_max), -math.inf)
    for i, n in enumerate(sizes):
        log_w[i, :n] = -math.log(n)
    return log_w


def _lse_matvec(kernel: Tensor, x: Tensor) -> Tensor:
    """
    log sum_j kernel_ij exp(x_j), batched: the log-sum-exp of log(kernel_ij) + x_j stabilised by
    max_j x_j, as a mat-vec. Exact in floating point when every kernel entry is a normal number.

    Args:
        kernel: (G, n, n) positive.
        x: (G, n) log-weights (-inf on padding).
    """
    shift = x.amax(dim=1, keepdim=True)
    weights = (x - shift).exp()
    if kernel.shape[0] == 1:  # one group: a BLAS mat-vec (CPU bmm of mat-vecs is much slower)
        sums = torch.mv(kernel[0], weights[0]).unsqueeze(0)
    else:
        sums = (kernel * weights.unsqueeze(1)).sum(dim=2)
    return shift + sums.log()


def _sinkhorn_log_potentials(
    log_kernel: Tensor, log_w: Tensor, iters: int, kernel_floor: float
) -> tuple[Tensor, Tensor]:
    """
    Sinkhorn iterations on log-potentials, with marginals exp(log_w) on both sides; each iteration
    scales the rows (f), then the columns (g), so the plan's column sums are exact.

    The log-sum-exps over a row or column of log_kernel + potential are mat-vecs with the kernel
    exp(log_kernel) (a shift by the potential's max keeps the exponentials <= 1) when the kernel's
    entries are bounded below by a normal number, i.e. ``kernel_floor`` > log(finfo.tiny); otherwise a
    full ``torch.logsumexp`` per update.

    Args:
        log_kernel: (G, n, n) -C / ε.
        log_w: (G, n) log-marginals (-inf on padding).
        iters: number of (row, column) update pairs.
        kernel_floor: a lower bound of ``log_kernel`` (-max C / ε).

    Returns:
        Log-potentials f, g (G, n) such that P = exp(log_kernel + f_i + g_j).
    """
    # Any constant start on the real columns gives the same plans; -inf keeps the padding out.
    f = g = log_w
    if kernel_floor > math.log(torch.finfo(log_kernel.dtype).tiny) + 8.0:
        kernel = log_kernel.exp()
        kernel_t = kernel.transpose(1, 2).contiguous()
        for _ in range(iters):
            f = log_w - _lse_matvec(kernel, g)
            g = log_w - _lse_matvec(kernel_t, f)
    else:
        for _ in range(iters):
            f = log_w - torch.logsumexp(log_kernel + g.unsqueeze(1), dim=2)
            g = log_w - torch.logsumexp(log_kernel + f.unsqueeze(2), dim=1)
    return f, g


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
    without autograd, in O(n²) memory. They work on log-potentials in at least fp32; their
    log-sum-exps are mat-vecs with the kernel K, exact because C <= 2 keeps K above exp(-2/ε), a
    normal fp32 number for ε >= 0.025; smaller ε falls back to full log-sum-exps. ``kl_weight``
    adds the per-sample forward KL (:func:`kl_loss`).

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
        log_w = _log_uniform_weights(sizes, cost)
        log_kernel = cost / -eps
        # Costs between probability vectors (or a zero padding row) are at most 2.
        f, g = _sinkhorn_log_potentials(log_kernel, log_w, iters, kernel_floor=-2.0 / eps)
        log_plan = log_kernel + f.unsqueeze(2) + g.unsqueeze(1)
        plan = log_plan.exp()
        log_ratio = log_plan - log_w.unsqueeze(2) - log_w.unsqueeze(1)
        entropic = eps * torch.where(plan > 0, plan * log_ratio, 0.0).sum(dim=(1, 2))
    loss = (plan * cost).sum(dim=(1, 2)) + entropic
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
