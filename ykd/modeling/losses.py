"""
Loss functions of the Y-KD model that are not classification KD (those live in `ykd.distillation`):
the unbiased cross-entropy of MMA and the box, mask and RPN distillation terms.

Shape shorthand: R = number of ROIs, K = number of foreground classes of the student, K_old = number
of old classes (the teacher's foreground classes), A = number of anchors of all levels, M = mask side.
"""

import torch
from torch.nn import functional as F

__all__ = ["unbiased_cross_entropy", "box_kd_loss", "mask_kd_loss", "rpn_kd_loss"]


def unbiased_cross_entropy(
    logits: torch.Tensor, gt_classes: torch.Tensor, num_old_classes: int
) -> torch.Tensor:
    """
    MMA's unbiased cross-entropy: background ROIs may hold unlabeled old objects, so their
    log-probability is that of {bg} ∪ old, ``log p(bg) = lse(z over {bg} ∪ old) - lse(z)``; other
    ROIs use the usual ``log p(c) = z_c - lse(z)``.

    Args:
        logits: (R, K+1) class logits, background last.
        gt_classes: (R,) labels in [0, K]; K is background.
        num_old_classes: the first ``num_old_classes`` columns are old classes.

    Returns:
        The mean negative log-likelihood (0 for R = 0).
    """
    if logits.numel() == 0:
        return logits.sum() * 0.0
    log_normaliser = torch.logsumexp(logits, dim=1)
    log_probs = logits.gather(1, gt_classes[:, None]).squeeze(1)
    background = gt_classes == logits.shape[1] - 1
    if num_old_classes > 0 and background.any():
        bg_and_old = torch.cat([logits[:, :num_old_classes], logits[:, -1:]], dim=1)
        log_probs = torch.where(background, torch.logsumexp(bg_and_old, dim=1), log_probs)
    return (log_normaliser - log_probs).mean()


def box_kd_loss(student_deltas: torch.Tensor, teacher_deltas: torch.Tensor) -> torch.Tensor:
    """
    ROI box distillation: mean over ROIs and old classes of the squared L2 distance between the
    student's and the teacher's regression deltas.

    Args:
        student_deltas: (R, K*4), or (R, 4) for class-agnostic regression.
        teacher_deltas: (R, K_old*4), or (R, 4); the student's first K_old*4 columns are compared.

    Returns:
        A scalar (0 for R = 0).
    """
    if teacher_deltas.numel() == 0:
        return student_deltas.sum() * 0.0
    old = student_deltas[:, : teacher_deltas.shape[1]]
    return (old - teacher_deltas).pow(2).view(len(old), -1, 4).sum(dim=2).mean()


def mask_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """
    Mask distillation: binary cross-entropy of the student's old-class mask logits against the
    teacher's mask probabilities, averaged over ROIs, old classes and pixels.

    Args:
        student_logits: (R, K, M, M), or (R, 1, M, M) for class-agnostic masks.
        teacher_logits: (R, K_old, M, M), or (R, 1, M, M).

    Returns:
        A scalar (0 for R = 0).
    """
    if teacher_logits.numel() == 0:
        return student_logits.sum() * 0.0
    old = student_logits[:, : teacher_logits.shape[1]]
    return F.binary_cross_entropy_with_logits(old, teacher_logits.sigmoid())


def rpn_kd_loss(
    student_objectness: torch.Tensor,
    teacher_objectness: torch.Tensor,
    student_deltas: torch.Tensor,
    teacher_deltas: torch.Tensor,
    *,
    delta_threshold: float,
) -> torch.Tensor:
    """
    Faster-ILOD's RPN distillation: ``mean(max(o_T - o_S, 0)^2)`` on objectness logits, plus the
    squared L2 distance of the anchor deltas, summed over the 4 coordinates and averaged over all
    anchors, counted only where the teacher is more confident (``o_T - o_S > delta_threshold``).

    Args:
        student_objectness, teacher_objectness: (N, A) objectness logits.
        student_deltas, teacher_deltas: (N, A, 4) anchor deltas.
        delta_threshold: objectness gap above which the deltas are distilled (0.1 in Faster-ILOD).

    Returns:
        A scalar (0 for A = 0).
    """
    if teacher_objectness.numel() == 0:
        return student_objectness.sum() * 0.0 + student_deltas.sum() * 0.0
    gap = teacher_objectness - student_objectness
    objectness_loss = gap.clamp(min=0).pow(2).mean()
    selected = (gap > delta_threshold).to(student_deltas.dtype)
    delta_loss = ((student_deltas - teacher_deltas).pow(2).sum(dim=2) * selected).mean()
    return objectness_loss + delta_loss
