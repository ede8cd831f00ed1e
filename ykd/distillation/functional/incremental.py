"""
Distillation losses of class-incremental detectors: MMA's unbiased KD and ILOD's logit L2.

Detectron2's convention: the background class is the last column. A teacher over {old, bg}
(Kt = K_old + 1) distils a student over {old, new, bg} (Ks = K_old + K_new + 1) whose first K_old columns
are the old classes.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import as_float, check_logits, empty_loss, reduce_loss

__all__ = ["L2_CENTERINGS", "l2_loss", "ukd_loss"]


def ukd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    Unbiased KD (Cermelli et al., "Modeling Missing Annotations for Incremental Learning in Object
    Detection", CVPRW 2022, after MiB, CVPR 2020). The student's new classes are folded into its
    background, since an old model sees new objects as background:

        q = softmax(y / T) over {old, bg},  z = student logits / T
        log p̃_bg = lse(z over {bg} ∪ new) - lse(z),  log p̃_c = z_c - lse(z) for old c
        L_i = -T² / (K_old + 1) [q_bg log p̃_bg + sum_old q_c log p̃_c]

    The folding is built in: build the registered ``ukd`` loss without a class-space adapter.
    T = 1 (the default) is MMA's loss.

    Args:
        student_logits: (R, Ks) over {old, new, bg}, Ks >= Kt.
        teacher_logits: (R, Kt) over {old, bg}.
        temperature: T > 0.
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
    """
    check_logits(
        "ukd",
        student_logits,
        teacher_logits,
        temperature=temperature,
        reduction=reduction,
        same_classes=False,
    )
    num_old = teacher_logits.shape[1] - 1
    if student_logits.shape[1] <= num_old:
        raise ValueError(
            f"ukd: the student needs the teacher's {num_old} old classes and a background, got "
            f"Ks={student_logits.shape[1]} for Kt={teacher_logits.shape[1]}"
        )
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    z = as_float(student_logits) / temperature
    den = torch.logsumexp(z, dim=1)
    log_p_old = z[:, :num_old] - den.unsqueeze(1)
    log_p_bg = torch.logsumexp(z[:, num_old:], dim=1) - den
    q = F.softmax(as_float(teacher_logits) / temperature, dim=1)
    loss = -((q[:, :num_old] * log_p_old).sum(dim=1) + q[:, num_old] * log_p_bg)
    return reduce_loss(loss * (temperature**2 / (num_old + 1)), reduction)


L2_CENTERINGS = ("compared", "student")
"""
How :func:`l2_loss` centres the student's logits: over the compared columns (the teacher's classes),
or over all the student's columns before keeping the teacher's (ILOD / Faster-ILOD's code).
"""


def l2_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    center: str = "compared",
) -> Tensor:
    """
    ILOD's logit distillation (Shmelkov et al., "Incremental Learning of Object Detectors without
    Catastrophic Forgetting", ICCV 2017): the mean squared difference of mean-normalised logits over
    the Kt compared classes (the teacher's: old classes and background),

        L_i = 1/Kt sum_k ((z_ik - m_S,i) - (y_ik - mean_k y_i))²,

    where the student's mean m_S,i depends on ``center``:

    - "compared": m_S,i = mean_k z_ik over the compared columns; student and teacher have the same
      Kt columns (build the registered ``l2`` loss with the "slice" adapter).
    - "student": m_S,i is the mean over all the student's Ks columns (old, new and background), then
      its old and background columns [:Kt-1] and [-1] are compared, as the ILOD / Faster-ILOD code
      (``cls_preprocess="normalization"`` in MMA's distillation.py) does. A student that copies the
      teacher's logits and gives its K_new new classes logit c is then penalised by
      (K_new (mean_k y_ik - c) / Ks)² per sample; with "compared" it gets 0.

    A teacher's -inf logits (masked classes) are left out: the teacher's mean, the comparison (and,
    with "compared", the student's mean) run over its finite columns.

    Args:
        student_logits: (R, Kt) with "compared"; (R, Ks), Ks >= Kt, [old..., new..., bg] with
            "student".
        teacher_logits: (R, Kt) [old..., bg].
        temperature: T > 0; with the T² convention of the other losses, L2(z/T, y/T) T² = L2(z, y), so it
            has no effect.
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
        center: one of :data:`L2_CENTERINGS`.
    """
    if center not in L2_CENTERINGS:
        raise ValueError(f"l2: center must be one of {L2_CENTERINGS}, got {center!r}")
    check_logits(
        "l2",
        student_logits,
        teacher_logits,
        temperature=temperature,
        reduction=reduction,
        same_classes=center == "compared",
    )
    num_teacher_classes = teacher_logits.shape[1]
    if student_logits.shape[1] < num_teacher_classes:
        raise ValueError(
            f"l2: the student's Ks={student_logits.shape[1]} classes must include the teacher's "
            f"Kt={num_teacher_classes}"
        )
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    z, y = as_float(student_logits), as_float(teacher_logits)
    if center == "student":
        z = z - z.mean(dim=1, keepdim=True)
        z = torch.cat([z[:, : num_teacher_classes - 1], z[:, -1:]], dim=1)
    kept = y != -math.inf
    count = kept.sum(dim=1, keepdim=True).clamp(min=1)
    y = y.masked_fill(~kept, 0.0)
    y = y - y.sum(dim=1, keepdim=True) / count
    if center == "compared":
        z = z - z.masked_fill(~kept, 0.0).sum(dim=1, keepdim=True) / count
    diff = torch.where(kept, z - y, 0.0)
    return reduce_loss(diff.square().sum(dim=1) / count.squeeze(1), reduction)
