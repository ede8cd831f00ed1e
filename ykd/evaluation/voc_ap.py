"""
PASCAL VOC average precision, as the MMA and Y-KD papers report it for instance segmentation.

Per class, detections are sorted by score and each one is matched to the ground-truth instance of
the same class and image with which it has the highest IoU (box IoU for ``"bbox"``, mask IoU for
``"segm"``). The detection is a true positive when that IoU is at least the threshold and the
instance was not taken by a higher-scored detection; it is a false positive otherwise (a duplicate
or a poor overlap); it is ignored when that instance is a crowd region ("difficult" in VOC). This
is the rule of the VOC devkit and of the evaluation code the papers build on (maskrcnn-benchmark,
ChainerCV). AP is the area under the all-point interpolated precision/recall curve (VOC 2010+),
averaged over the IoU thresholds .50:.05:.95 (Y-KD's code) or .50:.05:.90 (MMA's code).

IoUs are those of pycocotools (continuous coordinates, no "+1" pixel convention).
"""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_util

# The IoU thresholds .50:.05:.95, built as COCOeval builds them: those of Y-KD's evaluation code
# (``np.arange(0.5, 1, 0.05)``, DynYKD/Continual-Plant-Detection@6b74510:
# maskrcnn_benchmark/data/datasets/evaluation/voc/voc_eval_inst.py).
VOC_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
# The IoU thresholds .50:.05:.90 of MMA's evaluation code (``np.arange(0.5, 0.95, 0.05)``, nine
# thresholds: fcdl94/MMA@65124ec, same file).
MMA_VOC_IOU_THRESHOLDS = VOC_IOU_THRESHOLDS[:-1]
# Names of the threshold sets, as the ``CONTINUAL`` evaluation options and the docs give them.
VOC_IOU_THRESHOLD_SETS = {"50:95": VOC_IOU_THRESHOLDS, "50:90": MMA_VOC_IOU_THRESHOLDS}

TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = 1, 0, -1


@dataclass
class ClassMatches:
    """
    The detections of one class, each labelled at every IoU threshold.

    Attributes:
        scores: (D,) detection scores.
        labels: (T, D) int8, TRUE_POSITIVE, FALSE_POSITIVE or IGNORED at each of the T thresholds.
        num_gt: number of ground-truth instances of the class that are not crowd regions.
    """

    scores: np.ndarray
    labels: np.ndarray
    num_gt: int


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """
    Area under the all-point interpolated precision/recall curve (VOC 2010+).

    Args:
        recall, precision: (D,) cumulative recall and precision of the detections in score order.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    # Precision envelope: at each recall, the best precision reached at that recall or beyond.
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_detections(
    ious: np.ndarray, gt_ignore: np.ndarray, iou_thresholds: np.ndarray
) -> np.ndarray:
    """
    Label the detections of one class in one image with the VOC rule.

    Args:
        ious: (D, G) IoU of each detection with each ground-truth instance; the detections are in
            descending score order.
        gt_ignore: (G,) bool, True for crowd regions.
        iou_thresholds: (T,) IoU thresholds.

    Returns:
        (T, D) int8 labels: TRUE_POSITIVE, FALSE_POSITIVE or IGNORED.
    """
    num_dt, num_gt = ious.shape
    labels = np.full((len(iou_thresholds), num_dt), FALSE_POSITIVE, dtype=np.int8)
    if num_gt == 0:
        return labels
    best_gt = ious.argmax(axis=1)
    best_iou = ious[np.arange(num_dt), best_gt]
    for t, threshold in enumerate(iou_thresholds):
        taken = np.zeros(num_gt, dtype=bool)
        for d in np.flatnonzero(best_iou >= threshold):
            g = best_gt[d]
            if gt_ignore[g]:
                labels[t, d] = IGNORED
            elif not taken[g]:
                labels[t, d] = TRUE_POSITIVE
                taken[g] = True
    return labels


def _pairwise_iou(coco_gt, detections: list[dict], annotations: list[dict], iou_type: str):
    if not detections or not annotations:
        return np.zeros((len(detections), len(annotations)))
    if iou_type == "segm":
        dts = [d["segmentation"] for d in detections]
        gts = [coco_gt.annToRLE(a) for a in annotations]
    else:
        dts = np.asarray([d["bbox"] for d in detections], dtype=np.float64)
        gts = np.asarray([a["bbox"] for a in annotations], dtype=np.float64)
    # iscrowd=0 everywhere: a plain IoU, also with crowd regions (they are ignored after matching).
    return np.asarray(mask_util.iou(dts, gts, [0] * len(annotations)))


def match_coco_detections(
    coco_gt, detections: list[dict], iou_type: str, iou_thresholds=VOC_IOU_THRESHOLDS, img_ids=None
) -> dict[int, ClassMatches]:
    """
    Match COCO-format detections to the annotations of a COCO API object, class by class.

    Args:
        coco_gt (pycocotools.coco.COCO): the ground truth.
        detections: COCO result dicts ("image_id", "category_id" in the ground truth's category
            ids, "score", "bbox" in XYWH, and "segmentation" as RLE for ``iou_type="segm"``).
        iou_type: "bbox" or "segm".
        iou_thresholds: (T,) IoU thresholds.
        img_ids: the images to evaluate; all images of ``coco_gt`` by default.

    Returns:
        One :class:`ClassMatches` per category id of ``coco_gt``.
    """
    img_ids = set(coco_gt.getImgIds() if img_ids is None else img_ids)
    gts, dts = defaultdict(list), defaultdict(list)
    for ann in coco_gt.dataset["annotations"]:
        if ann["image_id"] in img_ids:
            gts[ann["image_id"], ann["category_id"]].append(ann)
    for det in detections:
        if det["image_id"] in img_ids:
            dts[det["image_id"], det["category_id"]].append(det)

    scores, labels, num_gt = defaultdict(list), defaultdict(list), defaultdict(int)
    for key in sorted(gts.keys() | dts.keys()):
        category_id = key[1]
        annotations = gts.get(key, [])
        image_dts = sorted(dts.get(key, []), key=lambda d: -d["score"])
        gt_ignore = np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool)
        num_gt[category_id] += int(np.count_nonzero(~gt_ignore))
        if image_dts:
            ious = _pairwise_iou(coco_gt, image_dts, annotations, iou_type)
            scores[category_id].append(np.array([d["score"] for d in image_dts], dtype=np.float64))
            labels[category_id].append(match_detections(ious, gt_ignore, iou_thresholds))

    empty_labels = np.zeros((len(iou_thresholds), 0), dtype=np.int8)
    return {
        category_id: ClassMatches(
            scores=np.concatenate(scores[category_id] or [np.zeros(0)]),
            labels=np.concatenate(labels[category_id] or [empty_labels], axis=1),
            num_gt=num_gt[category_id],
        )
        for category_id in sorted(set(coco_gt.getCatIds()) | num_gt.keys())
    }


def average_precision(matches: ClassMatches) -> np.ndarray:
    """
    VOC AP of one class at each IoU threshold.

    Returns:
        (T,) AP in [0, 1]; NaN when the class has no ground truth.
    """
    num_thresholds = matches.labels.shape[0]
    if matches.num_gt == 0:
        return np.full(num_thresholds, np.nan)
    labels = matches.labels[:, np.argsort(-matches.scores, kind="mergesort")]
    ap = np.zeros(num_thresholds)
    for t in range(num_thresholds):
        kept = labels[t][labels[t] != IGNORED]
        tp = np.cumsum(kept == TRUE_POSITIVE)
        fp = np.cumsum(kept == FALSE_POSITIVE)
        recall = tp / matches.num_gt
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[t] = voc_ap(recall, precision)
    return ap
