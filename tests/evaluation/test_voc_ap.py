"""Tests of the papers' VOC metric (ykd/evaluation/voc_ap.py) on hand-derived cases."""

import contextlib
import io

import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO

from ykd.evaluation import (
    MMA_VOC_IOU_THRESHOLDS,
    VOC_IOU_THRESHOLD_SETS,
    VOC_IOU_THRESHOLDS,
    ClassMatches,
    average_precision,
    match_coco_detections,
    match_detections,
    voc_ap,
)
from ykd.evaluation.voc_ap import FALSE_POSITIVE, IGNORED, TRUE_POSITIVE

TP, FP, IG = TRUE_POSITIVE, FALSE_POSITIVE, IGNORED


def test_voc_ap_all_point_interpolation():
    # Half recall at precision 1: area 0.5 (COCO's 101 points would give 51/101).
    assert voc_ap(np.array([0.5]), np.array([1.0])) == pytest.approx(0.5)
    # FP, TP, TP over 2 instances: recall 0, .5, 1 at precision 0, .5, 2/3. The envelope is 2/3
    # everywhere, so AP = .5 * 2/3 + .5 * 2/3 = 2/3.
    assert voc_ap(np.array([0, 0.5, 1]), np.array([0, 0.5, 2 / 3])) == pytest.approx(2 / 3)
    # TP, FP, TP: precision 1 up to recall .5, then 2/3 up to 1: AP = .5 + .5 * 2/3 = 5/6.
    assert voc_ap(np.array([0.5, 0.5, 1]), np.array([1, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0


def test_match_follows_the_voc_rule():
    thresholds = np.array([0.5])
    # Detection 1 takes instance 0. Detection 2 overlaps instance 0 best (0.8) and is a false
    # positive as a duplicate, although instance 1 (0.7) is free: VOC matches the best overlap only.
    ious = np.array([[0.9, 0.6], [0.8, 0.7], [0.3, 0.4]])
    assert match_detections(ious, np.zeros(2, bool), thresholds).tolist() == [[TP, FP, FP]]
    # A detection whose best overlap is a crowd region is ignored, at any rank.
    crowd = np.array([False, True])
    ious = np.array([[0.2, 0.9], [0.9, 0.1], [0.1, 0.8]])
    assert match_detections(ious, crowd, thresholds).tolist() == [[IG, TP, IG]]
    # No instance: every detection is a false positive.
    assert match_detections(np.zeros((2, 0)), np.zeros(0, bool), thresholds).tolist() == [[FP, FP]]


def test_iou_threshold_sets_of_the_two_codes():
    # Y-KD's np.arange(0.5, 1, 0.05) and MMA's np.arange(0.5, 0.95, 0.05), written out.
    ykd = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert VOC_IOU_THRESHOLDS.tolist() == pytest.approx(ykd)
    assert MMA_VOC_IOU_THRESHOLDS.tolist() == pytest.approx(ykd[:-1])
    assert set(VOC_IOU_THRESHOLD_SETS) == {"50:95", "50:90"}
    # An instance found with IoU 0.92: a hit at every threshold but .95, so its AP is 9/10 over
    # .50:.95 and 9/9 over .50:.90.
    for thresholds, expected in ((VOC_IOU_THRESHOLDS, 0.9), (MMA_VOC_IOU_THRESHOLDS, 1.0)):
        labels = match_detections(np.array([[0.92]]), np.zeros(1, bool), thresholds)
        ap = average_precision(ClassMatches(np.array([0.9]), labels, num_gt=1))
        assert ap.mean() == pytest.approx(expected)


def test_average_precision_over_iou_thresholds():
    # One instance found with IoU 0.72: true positive at .50, .55, .60, .65, .70, missed above.
    labels = match_detections(np.array([[0.72]]), np.zeros(1, bool), VOC_IOU_THRESHOLDS)
    ap = average_precision(ClassMatches(scores=np.array([0.9]), labels=labels, num_gt=1))
    assert ap.tolist() == [1.0] * 5 + [0.0] * 5
    # Ignored detections count neither way; a class without instances has no AP.
    matches = ClassMatches(np.array([0.9, 0.8]), np.array([[IG, TP]], np.int8), num_gt=2)
    assert average_precision(matches).tolist() == [0.5]
    empty = ClassMatches(np.zeros(0), np.zeros((1, 0), np.int8), num_gt=0)
    assert np.isnan(average_precision(empty)).all()


def _rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _box_mask(x, y, w, h, size=20):
    mask = np.zeros((size, size), bool)
    mask[y : y + h, x : x + w] = True
    return mask


@pytest.fixture
def coco_gt():
    # Two images, class 7 once in each; class 9 has no instance.
    boxes = {1: [2, 2, 8, 8], 2: [4, 4, 10, 6]}
    annotations = [
        {
            "id": i,
            "image_id": i,
            "category_id": 7,
            "bbox": box,
            "area": box[2] * box[3],
            "iscrowd": 0,
            "segmentation": _rle(_box_mask(*box)),
        }
        for i, box in boxes.items()
    ]
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "height": 20, "width": 20} for i in boxes],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "x"}, {"id": 9, "name": "y"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _detection(image_id, score, box, mask):
    return {
        "image_id": image_id,
        "category_id": 7,
        "score": score,
        "bbox": box,
        "segmentation": _rle(mask),
    }


def test_match_coco_detections_boxes_and_masks(coco_gt):
    detections = [
        _detection(1, 0.9, [12, 12, 6, 6], _box_mask(12, 12, 6, 6)),  # no overlap: FP
        _detection(1, 0.8, [2, 2, 8, 8], _box_mask(2, 2, 8, 8)),  # exact: TP
        # Exact box, but the mask covers the left half of the instance: mask IoU 0.5.
        _detection(2, 0.7, [4, 4, 10, 6], _box_mask(4, 4, 5, 6)),
    ]
    boxes = match_coco_detections(coco_gt, detections, "bbox")
    assert set(boxes) == {7, 9} and boxes[9].num_gt == 0 and boxes[7].num_gt == 2
    # FP, TP, TP at every threshold: 2/3 (see test_voc_ap_all_point_interpolation).
    assert average_precision(boxes[7]) == pytest.approx(np.full(10, 2 / 3))
    masks = average_precision(match_coco_detections(coco_gt, detections, "segm")[7])
    # At IoU .50 as for boxes; above, the last detection is a FP: recall .5 at precision .5, AP 1/4.
    assert masks == pytest.approx([2 / 3] + [1 / 4] * 9)
    only_image_1 = match_coco_detections(coco_gt, detections, "bbox", img_ids=[1])[7]
    assert only_image_1.num_gt == 1 and average_precision(only_image_1) == pytest.approx(
        np.full(10, 0.5)
    )
