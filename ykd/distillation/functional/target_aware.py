"""
Losses that split the classes into the target class of each sample and the others: DKD, NKD and the
teacher-free USKD.

They take ``targets`` (R,), the ground-truth class of each sample in the loss's class space. A sample
without ground truth (a distillation proposal, ``targets=None``) uses the teacher's argmax. On ROI heads
the background (last column) is a class like the others: a background ROI has target Ks - 1.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import (
    as_float,
    check_logits,
    check_targets,
    empty_loss,
    kl_from_log_probs,
    non_target_indices,
    reduce_loss,
    targets_or_teacher_argmax,
)

__all__ = ["dkd_loss", "nkd_loss", "uskd_loss"]


def _check_two_classes(name: str, num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(
            f"{name}: needs at least 2 classes (a target and a non-target), got {num_classes}"
        )


def dkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    targets: Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 8.0,
) -> Tensor:
    """
    Decoupled KD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022):

        L_i = T² [α KL(b_T || b_S) + β KL(p̂_T || p̂_S)]

    TCKD compares the binary distributions b = (p_target, 1 - p_target), NCKD the distributions p̂ over
    the non-target classes renormalised among themselves, all softened at T. α = β = 1 is the
    classical KL (up to NCKD's weight 1 - p_target, which DKD drops).

    Args:
        student_logits: (R, K).
        teacher_logits: (R, K).
        temperature: T > 0 (paper: 4 on CIFAR-100, 1 on ImageNet).
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
        targets: (R,) target classes, or None for the teacher's argmax.
        alpha: weight α of TCKD (paper: 1.0).
        beta: weight β of NCKD (paper: 8.0 on CIFAR-100, 0.5 on ImageNet).
    """
    check_logits(
        "dkd", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    num_rows, num_classes = student_logits.shape
    _check_two_classes("dkd", num_classes)
    if targets is not None:
        check_targets("dkd", targets, num_rows, num_classes)
    if num_rows == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    targets = targets_or_teacher_argmax(targets, teacher_logits).unsqueeze(1)
    others = non_target_indices(targets.squeeze(1), num_classes)
    z_s = as_float(student_logits) / temperature
    z_t = as_float(teacher_logits) / temperature
    log_p_s = F.log_softmax(z_s, dim=1)
    log_p_t = F.log_softmax(z_t, dim=1)

    def binary(log_p: Tensor) -> Tensor:
        target = log_p.gather(1, targets)
        return torch.cat([target, torch.logsumexp(log_p.gather(1, others), dim=1, keepdim=True)], 1)

    tckd = kl_from_log_probs(binary(log_p_t), binary(log_p_s))
    nckd = kl_from_log_probs(
        F.log_softmax(z_t.gather(1, others), dim=1), F.log_softmax(z_s.gather(1, others), dim=1)
    )
    return reduce_loss((alpha * tckd + beta * nckd) * temperature**2, reduction)


def nkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    targets: Tensor | None = None,
    gamma: float = 1.5,
) -> Tensor:
    """
    Normalized KD (Yang et al., "From Knowledge Distillation to Self-Knowledge Distillation: A Unified
    Approach with Normalized Loss and Customized Soft Labels", ICCV 2023):

        L_i = -p_T,t log p_S,t - γ λ² sum_{k != t} N(p_T^λ)_k log N(p_S^λ)_k

    with t the target class, p at temperature 1 in the target term, and N(p^λ) the non-target
    probabilities softened at λ and renormalised to sum to 1 (a softmax over the non-target logits / λ).
    Both terms are cross-entropies, so the loss is not 0 for identical distributions.

    Args:
        student_logits: (R, K).
        teacher_logits: (R, K).
        temperature: the paper's λ > 0 (paper: 1 on ImageNet, 4 on CIFAR-100).
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
        targets: (R,) target classes, or None for the teacher's argmax.
        gamma: weight γ of the non-target term (paper: 1.5).
    """
    check_logits(
        "nkd", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    num_rows, num_classes = student_logits.shape
    _check_two_classes("nkd", num_classes)
    if targets is not None:
        check_targets("nkd", targets, num_rows, num_classes)
    if num_rows == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    targets = targets_or_teacher_argmax(targets, teacher_logits).unsqueeze(1)
    others = non_target_indices(targets.squeeze(1), num_classes)
    z_s, z_t = as_float(student_logits), as_float(teacher_logits)
    log_p_s_target = F.log_softmax(z_s, dim=1).gather(1, targets).squeeze(1)
    p_t_target = F.softmax(z_t, dim=1).gather(1, targets).squeeze(1)
    log_n_s = F.log_softmax(z_s.gather(1, others) / temperature, dim=1)
    n_t = F.softmax(z_t.gather(1, others) / temperature, dim=1)
    loss = -p_t_target * log_p_s_target - gamma * temperature**2 * (n_t * log_n_s).sum(dim=1)
    return reduce_loss(loss, reduction)


def uskd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    targets: Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 0.1,
) -> Tensor:
    """
    USKD, teacher-free customised soft labels (Yang et al., ICCV 2023, same paper as :func:`nkd_loss`):

        s = softmax(z),  q_t = s_t² + 1 - mean_batch(s_t²)       (soft target label, not differentiated)
        z_k = (1 / r_k) / sum_j (1 / r_j) for k != t              (Zipf labels, r_k = rank of z_k among
                                                                    the non-target logits, 1 = largest)
        L_i = -α q_t log s_t - β sum_{k != t} z_k log N(s)_k

    with N(s) the non-target probabilities renormalised. The paper ranks the non-target classes by the
    final logits plus a weak auxiliary classifier on a mid-level feature; here only logits exist, so
    the ranking uses the student's own logits (the weak classifier and its loss are left out).

    On ROI heads: ``targets`` are the ROIs' matched ground-truth classes in the student's space (bg =
    last column); the teacher is only read for distillation proposals without ground truth, whose
    target is the teacher's argmax mapped to the student's space (teacher bg -> student bg). The batch
    mean of s_t² runs over all the R ROIs of the call.

    Args:
        student_logits: (R, Ks).
        teacher_logits: (R, Kt), Kt <= Ks, [old..., bg]; only its argmax is used, when ``targets`` is None.
        temperature: must be 1: USKD has no temperature.
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
        targets: (R,) target classes in [0, Ks), or None.
        alpha: weight α of the target term (paper: 1.0).
        beta: weight β of the Zipf non-target term (paper: 0.1).
    """
    check_logits(
        "uskd",
        student_logits,
        teacher_logits,
        temperature=temperature,
        reduction=reduction,
        same_classes=False,
    )
    if temperature != 1.0:
        raise ValueError(f"uskd: USKD has no temperature; it must be 1.0, got {temperature}")
    num_rows, num_classes = student_logits.shape
    _check_two_classes("uskd", num_classes)
    if teacher_logits.shape[1] > num_classes:
        raise ValueError(
            f"uskd: the teacher has more classes than the student (Kt={teacher_logits.shape[1]} > "
            f"Ks={num_classes})"
        )
    if targets is not None:
        check_targets("uskd", targets, num_rows, num_classes)
    if num_rows == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    if targets is None:
        teacher_bg = teacher_logits.shape[1] - 1
        targets = teacher_logits.argmax(dim=1)
        targets = torch.where(targets == teacher_bg, num_classes - 1, targets)
    targets = targets.unsqueeze(1)
    others = non_target_indices(targets.squeeze(1), num_classes)
    z = as_float(student_logits)
    log_s_target = F.log_softmax(z, dim=1).gather(1, targets).squeeze(1)
    z_others = z.gather(1, others)
    with torch.no_grad():
        s_target_sq = log_s_target.mul(2.0).exp()
        soft_target = s_target_sq + 1.0 - s_target_sq.mean()
        order = z_others.argsort(dim=1, descending=True)
        ranks = torch.empty_like(order).scatter_(
            1, order, torch.arange(1, num_classes, device=z.device).expand_as(order)
        )
        zipf = 1.0 / ranks.to(z.dtype)
        zipf = zipf / zipf.sum(dim=1, keepdim=True)
    loss_target = -soft_target * log_s_target
    loss_others = -(zipf * F.log_softmax(z_others, dim=1)).sum(dim=1)
    return reduce_loss(alpha * loss_target + beta * loss_others, reduction)
