"""
Logit distillation for classification heads: a registry of KD losses, their pure functions and a
class-space adapter; and a registry of feature-level distillers (interactive KD). Depends on torch
only, so it also distils plain image classifiers.

    from ykd.distillation import build_kd_loss
    loss_fn = build_kd_loss("kl", temperature=2.0, adapter="fold")
    loss = loss_fn(student_logits, teacher_logits)  # (R, Ks), (R, Kt) -> scalar
"""

from . import functional
from .adapters import ADAPTERS, adapt_class_space, adapt_targets
from .interactive import InteractiveKD
from .losses import KDLoss
from .registry import (
    FEATURE_KD_REGISTRY,
    KD_LOSS_REGISTRY,
    Registry,
    build_feature_kd,
    build_kd_loss,
    build_kd_loss_from_cfg,
)

__all__ = [
    "ADAPTERS",
    "FEATURE_KD_REGISTRY",
    "InteractiveKD",
    "KD_LOSS_REGISTRY",
    "KDLoss",
    "Registry",
    "adapt_class_space",
    "adapt_targets",
    "build_feature_kd",
    "build_kd_loss",
    "build_kd_loss_from_cfg",
    "functional",
]
