"""
Expected calibration error (ECE) of detection scores.

A detection's score is read as its confidence of being correct, and it is correct when it is a true
positive at IoU 0.5 under the VOC matching rule (:mod:`ykd.evaluation.voc_ap`): same class, best
overlap at least 0.5, and not a duplicate.
"""

import numpy as np

from .voc_ap import IGNORED, TRUE_POSITIVE, ClassMatches


def expected_calibration_error(
    scores: np.ndarray, correct: np.ndarray, num_bins: int = 15
) -> float:
    """
    ECE = sum over bins b of (n_b / N) * |accuracy_b - mean score_b|.

    Args:
        scores: (N,) confidences in [0, 1].
        correct: (N,) bool, whether each prediction is correct.
        num_bins: number of equal-width bins over [0, 1]; bin b holds [b/num_bins, (b+1)/num_bins),
            and a score of 1 falls in the last bin.

    Returns:
        The ECE in [0, 1]; NaN when there is no prediction.
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if scores.size == 0:
        return float("nan")
    bins = np.minimum((scores * num_bins).astype(np.int64), num_bins - 1)
    count = np.bincount(bins, minlength=num_bins)
    gap = np.bincount(bins, weights=correct - scores, minlength=num_bins)
    # |sum over the bin of (correct - score)| / N is (n_b / N) * |accuracy_b - mean score_b|.
    return float(np.abs(gap[count > 0]).sum() / scores.size)


def detection_ece(matches: list[ClassMatches], num_bins: int = 15) -> float:
    """
    ECE of the detections of some classes, correct meaning a true positive at the first IoU
    threshold of the matches (0.5 with ``VOC_IOU_THRESHOLDS``); detections of crowd regions are left
    out.

    Returns:
        The ECE in [0, 1]; NaN when there is no detection.
    """
    scores = np.concatenate([m.scores for m in matches] or [np.zeros(0)])
    labels = np.concatenate([m.labels[0] for m in matches] or [np.zeros(0, dtype=np.int8)])
    kept = labels != IGNORED
    return expected_calibration_error(scores[kept], labels[kept] == TRUE_POSITIVE, num_bins)
