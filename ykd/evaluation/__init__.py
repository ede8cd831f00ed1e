"""Continual-learning evaluation: COCO AP per class group, the papers' VOC AP, calibration."""

from .calibration import detection_ece, expected_calibration_error
from .continual_evaluator import (
    ContinualEvaluator,
    class_groups,
    group_means,
    summary_table,
)
from .voc_ap import (
    VOC_IOU_THRESHOLDS,
    ClassMatches,
    average_precision,
    match_coco_detections,
    match_detections,
    voc_ap,
)

__all__ = [
    "VOC_IOU_THRESHOLDS",
    "ClassMatches",
    "ContinualEvaluator",
    "average_precision",
    "class_groups",
    "detection_ece",
    "expected_calibration_error",
    "group_means",
    "match_coco_detections",
    "match_detections",
    "summary_table",
    "voc_ap",
]
