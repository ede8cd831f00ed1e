"""
Pure KD loss functions: ``loss(student_logits (R, Ks), teacher_logits (R, Kt), *, temperature=1.0,
reduction="mean", **options)``. The registered modules in :mod:`ykd.distillation.losses` wrap them.
"""

from .batch import rdist_loss, sinkd_loss
from .divergences import (
    BDKD_WEIGHTINGS,
    bdkd_loss,
    js_loss,
    kl_loss,
    rkl_loss,
    skew_kl_loss,
    skew_rkl_loss,
    tv_loss,
)
from .incremental import L2_CENTERINGS, l2_loss, ukd_loss
from .target_aware import dkd_loss, nkd_loss, uskd_loss

__all__ = [
    "BDKD_WEIGHTINGS",
    "L2_CENTERINGS",
    "bdkd_loss",
    "dkd_loss",
    "js_loss",
    "kl_loss",
    "l2_loss",
    "nkd_loss",
    "rdist_loss",
    "rkl_loss",
    "sinkd_loss",
    "skew_kl_loss",
    "skew_rkl_loss",
    "tv_loss",
    "ukd_loss",
    "uskd_loss",
]
