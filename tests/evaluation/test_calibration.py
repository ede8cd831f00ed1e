"""Tests of the expected calibration error (ykd/evaluation/calibration.py)."""

import numpy as np
import pytest

from ykd.evaluation import ClassMatches, detection_ece, expected_calibration_error
from ykd.evaluation.voc_ap import FALSE_POSITIVE, IGNORED, TRUE_POSITIVE


def test_expected_calibration_error():
    # One prediction per bin (bins 14, 11, 3 of 15): ECE = (|1 - .95| + |0 - .75| + |0 - .25|) / 3.
    ece = expected_calibration_error(np.array([0.95, 0.75, 0.25]), np.array([True, False, False]))
    assert ece == pytest.approx(0.35)
    # A calibrated bin: four predictions at 0.25, one correct.
    assert expected_calibration_error(np.full(4, 0.25), np.array([1, 0, 0, 0], bool)) == 0
    # A score of 1 falls in the last bin, next to 0.97: |(1 + 0) / 2 - (1 + .97) / 2| = 0.485.
    assert expected_calibration_error(
        np.array([1.0, 0.97]), np.array([True, False])
    ) == pytest.approx(0.485)
    assert np.isnan(expected_calibration_error(np.zeros(0), np.zeros(0, bool)))


def test_detection_ece_uses_iou_05_and_drops_ignored():
    labels = np.array([[TRUE_POSITIVE, FALSE_POSITIVE, IGNORED], [FALSE_POSITIVE] * 3], np.int8)
    matches = ClassMatches(scores=np.array([0.95, 0.75, 0.25]), labels=labels, num_gt=1)
    # Row 0 (IoU .5) counts: a TP at .95 and a FP at .75; the ignored detection is left out.
    assert detection_ece([matches]) == pytest.approx((0.05 + 0.75) / 2)
    assert np.isnan(detection_ece([]))
