"""
COCO evaluation of one step of a class-incremental scenario, with AP per group of classes.

At step t the test set holds the seen classes; they are grouped as ``old`` (tasks before t),
``new`` (task t), ``all`` (the seen classes) and one group per task named by its 1-based class
range (``1-15``, ``16-20``, a single class ``16``), plus the range of all incremental tasks when
there are two or more of them (``16-20`` in ``15-1``, as the papers report it).
"""

import os

import numpy as np
from detectron2.evaluation import COCOEvaluator
from tabulate import tabulate

from ..utils import write_json_atomic
from .calibration import detection_ece
from .voc_ap import VOC_IOU_THRESHOLD_SETS, average_precision, match_coco_detections

_IOU_TYPE_NAMES = {"segm": "mask", "bbox": "box"}
_TABLE_METRICS = ("AP", "AP50", "vocAP", "vocAP50", "ECE")


def _range_name(class_ids: list[int]) -> str:
    first, last = class_ids[0] + 1, class_ids[-1] + 1
    return str(first) if first == last else f"{first}-{last}"


def class_groups(class_tasks: list[list[int]], step: int, num_classes: int) -> dict[str, list[int]]:
    """
    The groups of seen classes reported at ``step``.

    Args:
        class_tasks: the contiguous class ids of each task, tasks after ``step`` allowed.
        step: the current step t.
        num_classes: number of seen classes (of the test set's ``thing_classes``).

    Returns:
        Group name -> contiguous ids, in the order "all", "old" (only when t > 0), "new", the task
        ranges, then the range of tasks 1..t when t >= 2.

    Raises:
        ValueError: if t is not a task index, or tasks 0..t do not list 0..num_classes-1 in order.
    """
    if not 0 <= step < len(class_tasks):
        raise ValueError(
            f"Step {step} has no task in {class_tasks}: set metadata.ykd_step (or pass step) to a"
            f" value from 0 to {len(class_tasks) - 1}."
        )
    seen_tasks = [list(map(int, task)) for task in class_tasks[: step + 1]]
    if not all(seen_tasks) or sum(seen_tasks, []) != list(range(num_classes)):
        raise ValueError(
            f"Tasks 0..{step} are {seen_tasks}, but they must list the contiguous ids 0..{num_classes - 1}"
            f" of the test set's {num_classes} thing_classes, in order and without gaps: set"
            " metadata.ykd_tasks (or pass class_tasks) from Scenario.tasks()."
        )
    groups = {"all": list(range(num_classes))}
    if step > 0:
        groups["old"] = sum(seen_tasks[:-1], [])
    groups["new"] = seen_tasks[-1]
    groups.update({_range_name(task): task for task in seen_tasks})
    if step >= 2:
        incremental = sum(seen_tasks[1:], [])
        groups[_range_name(incremental)] = incremental
    return groups


def group_means(per_class: dict[str, np.ndarray], groups: dict[str, list[int]]) -> dict[str, float]:
    """
    Mean of per-class metrics over each group, as flat ``"<group>/<metric>"`` keys.

    Classes whose value is NaN (no ground truth) are left out of the means; a group with no class
    left gets no key.

    Args:
        per_class: metric name -> (K,) values indexed by contiguous class id.
        groups: group name -> contiguous ids.
    """
    means = {}
    for group, class_ids in groups.items():
        for metric, values in per_class.items():
            values = values[class_ids]
            values = values[np.isfinite(values)]
            if values.size:
                means[f"{group}/{metric}"] = float(values.mean())
    return means


def _finite_or_none(value):
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def summary_table(results: dict, groups: list[str]) -> str:
    """
    A markdown table of evaluation ``results`` (as returned by :class:`ContinualEvaluator`): one
    row per group of classes, columns "mask AP", "mask AP50", "box AP", ... for the metrics present.
    """
    columns = [
        (iou_type, metric)
        for iou_type in _IOU_TYPE_NAMES
        if iou_type in results
        for metric in _TABLE_METRICS
        if any(f"{group}/{metric}" in results[iou_type] for group in groups)
    ]
    rows = [
        [group] + [results[iou_type].get(f"{group}/{metric}", "-") for iou_type, metric in columns]
        for group in groups
    ]
    headers = ["classes"] + [f"{_IOU_TYPE_NAMES[t]} {metric}" for t, metric in columns]
    return tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".2f", numalign="left")


class ContinualEvaluator(COCOEvaluator):
    """
    :class:`COCOEvaluator` that also reports AP and AP50 (in %) per group of classes of a
    continual-learning step: ``"<group>/AP"`` and ``"<group>/AP50"`` for the groups of
    :func:`class_groups`, means of the per-class APs of COCOeval (area "all", the largest maxDets),
    leaving out classes without ground truth. Optionally, the same groups for the papers' VOC
    metric (``"<group>/vocAP"`` averaged over IoU .50:.05:.95, or .50:.05:.90 as MMA's code,
    ``"<group>/vocAP50"``, and per class ``"vocAP-<name>"``) and the expected calibration error
    of the scores (``"<group>/ECE"``, in %).

    Detectron2's own keys stay ("AP", "AP50", ..., "AP-<name>"); "AP-<name>" is also right when the
    dataset's category ids are not in the order of the contiguous ids (a shuffled class order).
    The results are logged as a table and written to ``<output_dir>/eval.json``, NaN as null.
    """

    def __init__(
        self,
        dataset_name,
        tasks=None,
        distributed=True,
        output_dir=None,
        *,
        class_tasks=None,
        step=None,
        voc_metric=False,
        voc_iou_thresholds="50:95",
        calibration=False,
        max_dets_per_image=None,
        use_fast_impl=True,
        allow_cached_coco=True,
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, max_dets_per_image, use_fast_impl,
                allow_cached_coco: as for :class:`COCOEvaluator`; ``tasks`` are the COCO IoU
                types ("bbox", "segm"), not the classes of the scenario.
            class_tasks (list[list[int]]): contiguous class ids of each task of the scenario;
                by default the dataset's ``metadata.ykd_tasks``, else one task of all classes.
            step (int): the current step; by default ``metadata.ykd_step``, else the last task.
            voc_metric (bool): also report the VOC metric of the MMA/Y-KD papers.
            voc_iou_thresholds (str): the IoU thresholds it averages over, "50:95" (.50:.05:.95,
                Y-KD's code) or "50:90" (.50:.05:.90, MMA's code).
            calibration (bool): also report the expected calibration error of the scores.
        """
        if voc_iou_thresholds not in VOC_IOU_THRESHOLD_SETS:
            raise ValueError(
                f"VOC IoU thresholds {voc_iou_thresholds!r} are unknown: use one of"
                f" {sorted(VOC_IOU_THRESHOLD_SETS)}."
            )
        super().__init__(
            dataset_name,
            tasks,
            distributed,
            output_dir,
            max_dets_per_image=max_dets_per_image,
            use_fast_impl=use_fast_impl,
            allow_cached_coco=allow_cached_coco,
        )
        self._class_names = list(self._metadata.thing_classes)
        num_classes = len(self._class_names)
        if class_tasks is None:
            class_tasks = self._metadata.get("ykd_tasks", [list(range(num_classes))])
        if step is None:
            step = self._metadata.get("ykd_step", len(class_tasks) - 1)
        self._groups = class_groups(class_tasks, step, num_classes)
        self._voc_metric = voc_metric
        self._voc_iou_thresholds = VOC_IOU_THRESHOLD_SETS[voc_iou_thresholds]
        self._calibration = calibration
        identity = {i: i for i in range(num_classes)}
        self._contiguous_ids = dict(
            self._metadata.get("thing_dataset_id_to_contiguous_id", identity)
        )
        self._dataset_ids = {v: k for k, v in self._contiguous_ids.items()}

    def evaluate(self, img_ids=None):
        results = super().evaluate(img_ids)
        if results:
            self._logger.info("Continual evaluation results:\n" + self._summary_table(results))
            if self._output_dir:
                write_json_atomic(
                    os.path.join(self._output_dir, "eval.json"), _finite_or_none(results)
                )
        return results

    def _eval_predictions(self, predictions, img_ids=None):
        # The parent maps the category ids of the detections in place: give it copies.
        copies = [dict(p, instances=[dict(d) for d in p["instances"]]) for p in predictions]
        super()._eval_predictions(copies, img_ids=img_ids)
        if not (self._do_evaluation and (self._voc_metric or self._calibration)):
            return
        detections = [
            dict(d, category_id=self._dataset_ids[d["category_id"]])
            for p in predictions
            for d in p["instances"]
        ]
        for iou_type in self._results.keys() & _IOU_TYPE_NAMES.keys():
            matches = match_coco_detections(
                self._coco_api, detections, iou_type, self._voc_iou_thresholds, img_ids=img_ids
            )
            by_class = {self._contiguous_ids[cat_id]: m for cat_id, m in matches.items()}
            if self._voc_metric:
                self._results[iou_type].update(self._voc_results(by_class))
            if self._calibration:
                for group, class_ids in self._groups.items():
                    ece = detection_ece([by_class[c] for c in class_ids])
                    if np.isfinite(ece):
                        self._results[iou_type][f"{group}/ECE"] = 100 * ece

    def _voc_results(self, matches_by_class) -> dict[str, float]:
        ap = np.array(
            [average_precision(matches_by_class[c]) for c in range(len(self._class_names))]
        )
        results = group_means(
            {"vocAP": 100 * ap.mean(axis=1), "vocAP50": 100 * ap[:, 0]}, self._groups
        )
        results.update(
            {
                f"vocAP-{name}": float(100 * class_ap.mean())
                for name, class_ap in zip(self._class_names, ap, strict=True)
                if np.isfinite(class_ap).all()
            }
        )
        return results

    def _tasks_from_predictions(self, predictions):
        """
        The IoU types to evaluate: those the detections carry and, when there is no detection at
        all, "segm" too if the ground truth has masks, so that a model that detects nothing gets
        mask AP 0 rather than no mask result.
        """
        tasks = set(super()._tasks_from_predictions(predictions))
        if not predictions and any(
            "segmentation" in a for a in self._coco_api.dataset.get("annotations", [])
        ):
            tasks.add("segm")
        return sorted(tasks)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        if coco_eval is not None and class_names is not None:
            # COCOeval orders classes by dataset category id; the parent assumes contiguous order.
            class_names = [class_names[self._contiguous_ids[c]] for c in coco_eval.params.catIds]
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        ap, ap50 = self._per_class_ap(coco_eval)
        if coco_eval is None:
            # No detection: AP 0 wherever there is ground truth (Detectron2 reports NaN).
            has_gt = np.isfinite(ap).any()
            results.update({m: 0.0 for m in ("AP", "AP50", "AP75") if has_gt})
            results.update(
                {
                    f"AP-{name}": 0.0
                    for name, value in zip(self._class_names, ap, strict=True)
                    if np.isfinite(value)
                }
            )
        results.update(group_means({"AP": ap, "AP50": ap50}, self._groups))
        return results

    def _per_class_ap(self, coco_eval) -> tuple[np.ndarray, np.ndarray]:
        """
        AP@[.50:.95] and AP50 (in %) of each class, indexed by contiguous id; NaN for the classes
        without ground truth. Without a COCOeval (no detection at all), every class with ground
        truth has AP 0.
        """
        ap = np.full(len(self._class_names), np.nan)
        ap50 = np.full(len(self._class_names), np.nan)
        if coco_eval is None:
            for cat_id in self._coco_api.getCatIds():
                if self._coco_api.getAnnIds(catIds=[cat_id], iscrowd=False):
                    ap[self._contiguous_ids[cat_id]] = ap50[self._contiguous_ids[cat_id]] = 0.0
            return ap, ap50
        # (IoU thresholds, recall thresholds, classes) at area range "all" and the largest maxDets.
        precision = coco_eval.eval["precision"][:, :, :, 0, -1]
        for k, cat_id in enumerate(coco_eval.params.catIds):
            class_precision = precision[:, :, k]
            if (class_precision > -1).any():
                c = self._contiguous_ids[cat_id]
                ap[c] = 100 * class_precision[class_precision > -1].mean()
                ap50[c] = 100 * class_precision[0][class_precision[0] > -1].mean()
        return ap, ap50

    def _summary_table(self, results) -> str:
        return summary_table(results, list(self._groups))
