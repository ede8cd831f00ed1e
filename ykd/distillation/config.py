"""
Config keys of the distillation options: the ILOD L2 centring and the feature distillers.

:func:`add_kd_config` adds them to a config that has ``add_ykd_config``'s keys (``MODEL.YKD``); it
adds only missing keys, so it may run more than once. Works on any yacs-style ``CfgNode`` (the type
of the given config), so this module needs no Detectron2 import.
"""

from typing import Any

__all__ = ["FEATURE_KD_NAMES", "add_kd_config", "with_kd_config"]

FEATURE_KD_NAMES = ("interactive", "faster_ilod")
"""Default ``MODEL.YKD.FEATURE_KD.NAMES``: the built-in feature distillers, each on when its own
config node enables it (:meth:`~ykd.distillation.feature_kd.FeatureDistiller.enabled`)."""


def add_kd_config(cfg: Any) -> None:
    """
    Add the missing keys, with their defaults:

    - ``MODEL.YKD.KD_CLS.L2.CENTER`` ("compared"): how the ``l2`` loss centres the student's logits,
      over the compared columns ("compared") or over all its columns before slicing ("student",
      ILOD's and Faster-ILOD's code).
    - ``MODEL.YKD.FEATURE_KD.NAMES``: the registered feature distillers
      (``ykd.distillation.FEATURE_KD_REGISTRY``) the model may build at steps t >= 1; each reads
      its own node and is built only when that node enables it.
    - ``MODEL.YKD.TRUNK_KD`` (the ``faster_ilod`` feature distiller): ``WEIGHT`` (0.0 = off) of
      Faster-ILOD's normalised, filtered L1 between the student's and the separate teacher's trunk
      features, ``IN_FEATURES`` (``[]`` = every trunk output).
    """
    node_type = type(cfg)
    ykd = cfg.MODEL.YKD
    if "L2" not in ykd.KD_CLS:
        ykd.KD_CLS.L2 = node_type()
        ykd.KD_CLS.L2.CENTER = "compared"
    if "FEATURE_KD" not in ykd:
        ykd.FEATURE_KD = node_type()
        ykd.FEATURE_KD.NAMES = list(FEATURE_KD_NAMES)
    if "TRUNK_KD" not in ykd:
        ykd.TRUNK_KD = node_type()
        ykd.TRUNK_KD.WEIGHT = 0.0
        ykd.TRUNK_KD.IN_FEATURES = []


def with_kd_config(cfg: Any) -> Any:
    """``cfg`` itself when it has every key of :func:`add_kd_config`, else a copy completed with them."""
    ykd = cfg.MODEL.YKD
    if "L2" in ykd.KD_CLS and "FEATURE_KD" in ykd and "TRUNK_KD" in ykd:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    add_kd_config(cfg)
    return cfg
