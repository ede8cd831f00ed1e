"""
Distillation losses of class-incremental detectors: MMA's unbiased KD and ILOD's logit L2.

Detectron2's convention: the background class is the last column. A teacher over {old, bg}
(Kt = K_old + 1) distils a student over {old, new, bg} (Ks = K_old + K_new + 1) whose first K_old columns
are the old classes.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import as_float, check_logits, empty_loss, reduce_loss

__all__ = ["l2_loss", "ukd_loss"]


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


def l2_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    ILOD's logit distillation (Shmelkov et al., "Incremental Learning of Object Detectors without
    Catastrophic Forgetting", ICCV 2017): the mean squared difference of mean-normalised logits,

        L_i = 1/K sum_k ((z_ik - mean_k z_i) - (y_ik - mean_k y_i))²

    over the K compared classes (ILOD: old classes and background; build the registered ``l2`` loss with
    the "slice" adapter).

    Args:
        student_logits: (R, K).
        teacher_logits: (R, K).
        temperature: T > 0; with the T² convention of the other losses, L2(z/T, y/T) T² = L2(z, y), so it
            has no effect.
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.
    """
    check_logits("l2", student_logits, teacher_logits, temperature=temperature, reduction=reduction)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    z, y = as_float(student_logits), as_float(teacher_logits)
    diff = (z - z.mean(dim=1, keepdim=True)) - (y - y.mean(dim=1, keepdim=True))
    return reduce_loss(diff.square().mean(dim=1), reduction)
