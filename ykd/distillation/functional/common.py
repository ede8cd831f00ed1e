"""Input checks, dtype handling, reductions and small numerics shared by the KD losses."""

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_logits(
    name: str,
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    same_classes: bool = True,
) -> None:
    """
    Raise a one-line ``ValueError`` naming the loss when the inputs cannot be distilled.

    Args:
        name: loss name used in the message.
        student_logits: (R, Ks).
        teacher_logits: (R, Kt).
        temperature: must be > 0.
        reduction: one of :data:`REDUCTIONS`.
        same_classes: require Ks == Kt (losses comparing class distributions column by column).
    """
    if student_logits.dim() != 2 or teacher_logits.dim() != 2:
        raise ValueError(
            f"{name}: expected 2-D logits (R, K), got student {tuple(student_logits.shape)} "
            f"and teacher {tuple(teacher_logits.shape)}"
        )
    (rs, ks), (rt, kt) = student_logits.shape, teacher_logits.shape
    if rs != rt:
        raise ValueError(
            f"{name}: student and teacher have different numbers of rows (R={rs} vs {rt})"
        )
    if not temperature > 0:
        raise ValueError(f"{name}: temperature must be > 0, got {temperature}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if same_classes and ks != kt:
        if kt > ks:
            raise ValueError(
                f"{name}: the teacher has more classes than the student (Kt={kt} > Ks={ks}); "
                "a teacher over {old, bg} needs a student over {old, new, bg}"
            )
        raise ValueError(
            f"{name}: student has Ks={ks} classes and teacher Kt={kt}; align them with a class-space "
            "adapter (adapter='slice' or 'fold')"
        )


def check_targets(name: str, targets: Tensor, num_rows: int, num_classes: int) -> None:
    """Raise a one-line ``ValueError`` unless ``targets`` is an (R,) integer tensor of valid classes."""
    if targets.dim() != 1 or targets.shape[0] != num_rows or targets.is_floating_point():
        raise ValueError(
            f"{name}: targets must be an integer tensor of shape ({num_rows},), got "
            f"{targets.dtype} {tuple(targets.shape)}"
        )
    if num_rows and not 0 <= int(targets.min()) <= int(targets.max()) < num_classes:
        raise ValueError(
            f"{name}: targets must lie in [0, {num_classes}), the class space of the loss"
        )


def as_float(x: Tensor) -> Tensor:
    """``x`` in float32, or float64 when it already is: the losses accumulate in at least fp32."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def empty_loss(student_logits: Tensor, teacher_logits: Tensor, reduction: str) -> Tensor:
    """
    The loss of an empty batch (R = 0): zero, connected to both inputs so that it has a ``grad_fn``
    whenever one of them requires grad (``(0,)`` values for ``reduction="none"``).
    """
    zero = as_float(student_logits).sum(dim=1) * 0.0 + as_float(teacher_logits).sum(dim=1) * 0.0
    return zero if reduction == "none" else zero.sum()


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Reduce per-sample values ``loss`` (N,) by ``reduction`` ("mean", "sum" or "none")."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def kl_from_log_probs(log_p: Tensor, log_q: Tensor) -> Tensor:
    """
    Row-wise KL(p || q) from log-probabilities.

    Zero probabilities in ``p`` contribute 0, also when ``log_p`` is -inf (masked classes).

    Args:
        log_p, log_q: (R, K) log-probabilities.

    Returns:
        (R,) divergences.
    """
    log_p_finite = log_p.clamp(min=torch.finfo(log_p.dtype).min)
    return (log_p.exp() * (log_p_finite - log_q)).sum(dim=1)


def entropy_from_log_probs(log_p: Tensor) -> Tensor:
    """Row-wise entropy (R,) of (R, K) log-probabilities; zero probabilities contribute 0."""
    log_p_finite = log_p.clamp(min=torch.finfo(log_p.dtype).min)
    return -(log_p.exp() * log_p_finite).sum(dim=1)


def non_target_indices(targets: Tensor, num_classes: int) -> Tensor:
    """
    Column indices of the non-target classes of each row, in increasing order.

    Args:
        targets: (R,) target class per row.
        num_classes: K.

    Returns:
        (R, K - 1) long tensor: row i lists {0, ..., K-1} \\ {targets[i]}.
    """
    cols = torch.arange(num_classes - 1, device=targets.device)
    return cols.unsqueeze(0) + (cols.unsqueeze(0) >= targets.unsqueeze(1)).long()


def targets_or_teacher_argmax(targets: Tensor | None, teacher_logits: Tensor) -> Tensor:
    """The given targets (R,), or the teacher's argmax class when there is no ground truth."""
    if targets is None:
        return teacher_logits.argmax(dim=1)
    return targets
