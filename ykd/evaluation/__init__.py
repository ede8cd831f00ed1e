"""
Continual-learning evaluation: COCO AP per class group, the papers' VOC AP, calibration, and
pictures of predictions.
"""

from .calibration import detection_ece, expected_calibration_error
from .continual_evaluator import (
    ContinualEvaluator,
    class_groups,
    group_means,
    summary_table,
)
from .visualization import (
    ImagePredictor,
    fixed_test_images,
    old_classes_of,
    prediction_grid,
    write_prediction_grid,
)
from .voc_ap import (
    MMA_VOC_IOU_THRESHOLDS,
    VOC_IOU_THRESHOLD_SETS,
    VOC_IOU_THRESHOLDS,
    ClassMatches,
    average_precision,
    match_coco_detections,
    match_detections,
    voc_ap,
)

__all__ = [
    "MMA_VOC_IOU_THRESHOLDS",
    "VOC_IOU_THRESHOLDS",
    "VOC_IOU_THRESHOLD_SETS",
    "ClassMatches",
    "ContinualEvaluator",
    "ImagePredictor",
    "average_precision",
    "class_groups",
    "detection_ece",
    "expected_calibration_error",
    "fixed_test_images",
    "group_means",
    "match_coco_detections",
    "match_detections",
    "old_classes_of",
    "prediction_grid",
    "summary_table",
    "voc_ap",
    "write_prediction_grid",
]
