"""
Logit distillation for classification heads: a registry of KD losses, their pure functions and a
class-space adapter; and a registry of feature-level distillers (interactive KD, Faster-ILOD's trunk
KD). Depends on torch only, so it also distils plain image classifiers. The losses' reference is
docs/kd_losses.md.

    from ykd.distillation import build_kd_loss
    loss_fn = build_kd_loss("kl", temperature=2.0, adapter="fold")
    loss = loss_fn(student_logits, teacher_logits)  # (R, Ks), (R, Kt) -> scalar
"""

from . import functional
from .adapters import ADAPTERS, adapt_class_space, adapt_targets
from .config import add_kd_config, with_kd_config
from .detector_losses import L2Loss, UKDLoss
from .feature_kd import FeatureDistiller, FeatureKDInputs
from .interactive import InteractiveKD
from .losses import KDLoss
from .registry import (
    FEATURE_KD_REGISTRY,
    KD_LOSS_REGISTRY,
    Registry,
    build_feature_kd,
    build_feature_kds_from_cfg,
    build_kd_loss,
    build_kd_loss_from_cfg,
)
from .trunk import FasterILODFeatureKD

__all__ = [
    "ADAPTERS",
    "FEATURE_KD_REGISTRY",
    "FasterILODFeatureKD",
    "FeatureDistiller",
    "FeatureKDInputs",
    "InteractiveKD",
    "KD_LOSS_REGISTRY",
    "KDLoss",
    "L2Loss",
    "Registry",
    "UKDLoss",
    "adapt_class_space",
    "adapt_targets",
    "add_kd_config",
    "build_feature_kd",
    "build_feature_kds_from_cfg",
    "build_kd_loss",
    "build_kd_loss_from_cfg",
    "functional",
    "with_kd_config",
]
