"""
Class-space adapters: align a student over {old, new, bg} with a teacher over {old, bg}.

Detectron2's convention: background is the last column. The teacher has Kt = K_old + 1 columns
[old..., bg]; the student has Ks = K_old + K_new + 1 columns [old..., new..., bg]. An adapter maps the
student's logits (and ground-truth classes) to the teacher's Kt columns, so that any loss comparing two
distributions over the same classes applies.
"""

import torch
from torch import Tensor

__all__ = ["ADAPTERS", "adapt_class_space", "adapt_targets"]

ADAPTERS = ("none", "slice", "fold")
"""
"none": no change (student and teacher must already share their classes);
"slice": keep the student's old columns and its bg column, i.e. renormalise it over {old, bg}
    (LwF / ILOD style);
"fold": replace the student's bg column by the log-sum-exp of its new and bg columns, so that
    p̃_bg = p_bg + sum_new p_new (MMA / MiB: an old model sees new objects as background).
"""


def adapt_class_space(
    student_logits: Tensor, num_teacher_classes: int, mode: str, *, temperature: float = 1.0
) -> Tensor:
    """
    Map student logits onto the teacher's class space.

    Args:
        student_logits: (R, Ks), [old..., new..., bg].
        num_teacher_classes: Kt = K_old + 1 <= Ks.
        mode: one of :data:`ADAPTERS`.
        temperature: T of the loss that follows; "fold" sums the probabilities softened at T, i.e. the
            folded logit is T lse(z / T), so that softmax(adapted / T) is exact.

    Returns:
        (R, Kt) logits [old..., bg] ((R, Ks) unchanged for "none").
    """
    if mode not in ADAPTERS:
        raise ValueError(f"Unknown class-space adapter {mode!r}; known: {', '.join(ADAPTERS)}")
    if mode == "none":
        return student_logits
    if student_logits.dim() != 2:
        raise ValueError(
            f"adapter {mode!r}: expected (R, Ks) logits, got {tuple(student_logits.shape)}"
        )
    num_student_classes = student_logits.shape[1]
    if not 1 <= num_teacher_classes <= num_student_classes:
        raise ValueError(
            f"adapter {mode!r}: the teacher's Kt={num_teacher_classes} classes must be at least the "
            f"background and at most the student's Ks={num_student_classes}"
        )
    if num_teacher_classes == num_student_classes:
        return student_logits
    num_old = num_teacher_classes - 1
    old = student_logits[:, :num_old]
    if mode == "slice":
        bg = student_logits[:, -1:]
    else:
        bg = temperature * torch.logsumexp(
            student_logits[:, num_old:] / temperature, dim=1, keepdim=True
        )
    return torch.cat([old, bg], dim=1)


def adapt_targets(targets: Tensor, num_teacher_classes: int, mode: str) -> Tensor:
    """
    Map student-space classes (R,) in [0, Ks) to the teacher's space: old classes are kept, new classes
    and background become the teacher's background Kt - 1 (identity for "none").
    """
    if mode == "none":
        return targets
    return targets.clamp(max=num_teacher_classes - 1)
