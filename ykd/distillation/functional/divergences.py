"""
Divergences between the teacher's and the student's class distributions, one value per sample (ROI).

All take ``student_logits`` (R, K) and ``teacher_logits`` (R, K) over the same classes, soften both by
the temperature T (``softmax(z / T)``), work on log-probabilities in at least fp32, and multiply by T²
so that gradient magnitudes stay comparable across temperatures (Hinton et al., 2015). The teacher is
not detached: pass detached teacher logits for offline distillation.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import (
    as_float,
    check_logits,
    empty_loss,
    entropy_from_log_probs,
    kl_from_log_probs,
    reduce_loss,
)

__all__ = [
    "BDKD_WEIGHTINGS",
    "bdkd_loss",
    "js_loss",
    "kl_loss",
    "rkl_loss",
    "skew_kl_loss",
    "skew_rkl_loss",
    "tv_loss",
]


def _tempered_log_probs(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """Log-softmax of both (R, K) logits at ``temperature``, in at least fp32."""
    log_p_s = F.log_softmax(as_float(student_logits) / temperature, dim=1)
    log_p_t = F.log_softmax(as_float(teacher_logits) / temperature, dim=1)
    return log_p_s, log_p_t


def _log_mixture(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """log(w a + (1 - w) b) of (R, K) log-probabilities, exact at w = 0 and w = 1."""
    if weight_a == 0.0:
        return log_b
    if weight_a == 1.0:
        return log_a
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log1p(-weight_a))


def kl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    Forward KL, T² KL(p_T || p_S) (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015).

    Args:
        student_logits: (R, K) student logits.
        teacher_logits: (R, K) teacher logits over the same classes.
        temperature: T > 0 (paper: 1 to 20).
        reduction: "mean" or "sum" over the R samples, or "none" for the (R,) values.

    Returns:
        A scalar, or (R,) values with ``reduction="none"``.
    """
    check_logits("kl", student_logits, teacher_logits, temperature=temperature, reduction=reduction)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    return reduce_loss(kl_from_log_probs(log_p_t, log_p_s) * temperature**2, reduction)


def rkl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    Reverse KL, T² KL(p_S || p_T): mode-seeking (e.g. Gu et al., "MiniLLM", ICLR 2024).

    A teacher logit of -inf (a masked class, zero teacher probability where the student's is
    positive) gives +inf, the divergence's value; teachers whose probabilities only underflow to 0
    (finite logits, e.g. -1e4) give finite values.

    Args and returns as :func:`kl_loss`.
    """
    check_logits(
        "rkl", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    return reduce_loss(kl_from_log_probs(log_p_s, log_p_t) * temperature**2, reduction)


def js_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    Jensen-Shannon divergence, T² [KL(p_T || m) + KL(p_S || m)] / 2 with m = (p_T + p_S) / 2
    (Lin, "Divergence measures based on the Shannon entropy", IEEE T-IT 1991; used for KD by
    Agarwal et al., "GKD", ICLR 2024). In [0, T² log 2].

    Args and returns as :func:`kl_loss`.
    """
    check_logits("js", student_logits, teacher_logits, temperature=temperature, reduction=reduction)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    log_m = _log_mixture(log_p_t, log_p_s, 0.5)
    loss = 0.5 * (kl_from_log_probs(log_p_t, log_m) + kl_from_log_probs(log_p_s, log_m))
    return reduce_loss(loss * temperature**2, reduction)


def tv_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """
    Total variation distance, T² sum_k |p_T,k - p_S,k| / 2 (used for KD by Wen et al., "f-Divergence
    Minimization for Sequence-Level Knowledge Distillation", ACL 2023). In [0, T²].

    Args and returns as :func:`kl_loss`.
    """
    check_logits("tv", student_logits, teacher_logits, temperature=temperature, reduction=reduction)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    loss = 0.5 * (log_p_t.exp() - log_p_s.exp()).abs().sum(dim=1)
    return reduce_loss(loss * temperature**2, reduction)


def _check_skew(name: str, skew: float) -> None:
    if not 0.0 <= skew <= 1.0:
        raise ValueError(f"{name}: skew lambda must lie in [0, 1], got {skew}")


def skew_kl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    skew: float = 0.1,
) -> Tensor:
    """
    Skew KL, T² KL(p_T || λ p_T + (1 - λ) p_S) (Ko et al., "DistiLLM: Towards Streamlined Distillation
    for Large Language Models", ICML 2024, skew α = 0.1). λ = 0 is :func:`kl_loss`; the value is
    bounded by T² log(1/λ).

    Args:
        skew: the skew λ in [0, 1] (paper: α = 0.1).
        Others as :func:`kl_loss`.
    """
    check_logits(
        "skew_kl", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    _check_skew("skew_kl", skew)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    loss = kl_from_log_probs(log_p_t, _log_mixture(log_p_t, log_p_s, skew))
    return reduce_loss(loss * temperature**2, reduction)


def skew_rkl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    skew: float = 0.1,
) -> Tensor:
    """
    Skew reverse KL, T² KL(p_S || λ p_S + (1 - λ) p_T) (DistiLLM, Ko et al., ICML 2024, α = 0.1).
    λ = 0 is :func:`rkl_loss`.

    Args and returns as :func:`skew_kl_loss`.
    """
    check_logits(
        "skew_rkl", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    _check_skew("skew_rkl", skew)
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    loss = kl_from_log_probs(log_p_s, _log_mixture(log_p_s, log_p_t, skew))
    return reduce_loss(loss * temperature**2, reduction)


def hard_bdkd_weighting(entropy_gap: Tensor) -> Tensor:
    """1 where the student is less confident than the teacher (H_S > H_T), else 0."""
    return (entropy_gap > 0).to(entropy_gap.dtype)


def smooth_bdkd_weighting(entropy_gap: Tensor) -> Tensor:
    """sigmoid(H_S - H_T): a differentiable-in-the-gap version of the hard switch (0.5 at equal entropy)."""
    return torch.sigmoid(entropy_gap)


BDKD_WEIGHTINGS: dict[str, Callable[[Tensor], Tensor]] = {
    "hard": hard_bdkd_weighting,
    "smooth": smooth_bdkd_weighting,
}
"""
BD-KD weighting functions: entropy gap H(p_S) - H(p_T) (R,) -> weight w of the reverse KL (R,) in [0, 1];
the forward KL gets 1 - w.
"""


def bdkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "mean",
    weighting: str | Callable[[Tensor], Tensor] = "hard",
    gap_scale: float = 1.0,
) -> Tensor:
    """
    BD-KD, a per-sample balance of forward and reverse KL driven by the teacher-student entropy gap
    (Amara et al., "BD-KD: Balancing the Divergences for Online Knowledge Distillation", 2022):

        L_i = T² [(1 - w_i) KL(p_T || p_S) + w_i KL(p_S || p_T)],  w_i = f((H(p_S) - H(p_T)) / s)

    where the entropies are of the softened distributions and w is not differentiated (a weight, not a
    target). A student less confident than the teacher is pulled by the mode-seeking reverse KL, which
    sharpens it; an over-confident student by the mean-seeking forward KL, which softens it.

    A teacher logit of -inf (a masked class) makes the reverse KL +inf. Each branch only counts
    where its weight is positive, so a sample of weight w = 0 gets the finite forward KL and a
    finite gradient; a sample of weight w > 0 (always, with "smooth") gets +inf, the value of
    its reverse KL.

    Args:
        weighting: f, a name in :data:`BDKD_WEIGHTINGS` ("hard": w = [gap > 0], the paper's switch;
            "smooth": w = sigmoid(gap)) or a callable mapping the (R,) scaled gaps to weights in [0, 1].
        gap_scale: s > 0, the entropy gap (in nats) that counts as one unit for the weighting.
        Others as :func:`kl_loss`.
    """
    check_logits(
        "bdkd", student_logits, teacher_logits, temperature=temperature, reduction=reduction
    )
    if not gap_scale > 0:
        raise ValueError(f"bdkd: gap_scale must be > 0, got {gap_scale}")
    if isinstance(weighting, str):
        if weighting not in BDKD_WEIGHTINGS:
            raise ValueError(
                f"bdkd: unknown weighting {weighting!r}; known: {', '.join(BDKD_WEIGHTINGS)}"
            )
        weighting = BDKD_WEIGHTINGS[weighting]
    if student_logits.shape[0] == 0:
        return empty_loss(student_logits, teacher_logits, reduction)
    log_p_s, log_p_t = _tempered_log_probs(student_logits, teacher_logits, temperature)
    with torch.no_grad():
        gap = entropy_from_log_probs(log_p_s) - entropy_from_log_probs(log_p_t)
        w_reverse = weighting(gap / gap_scale)
    forward = kl_from_log_probs(log_p_t, log_p_s)
    # The reverse KL only where its weight is positive: with a -inf teacher logit (a masked class)
    # it is +inf, and +inf times a zero weight (or its gradient) would be NaN. Elsewhere it is
    # computed against the student itself, a finite 0 that the zero weight removes.
    reverse_target = torch.where((w_reverse > 0).unsqueeze(1), log_p_t, log_p_s.detach())
    reverse = kl_from_log_probs(log_p_s, reverse_target)
    loss = (1.0 - w_reverse) * forward + w_reverse * reverse
    return reduce_loss(loss * temperature**2, reduction)
