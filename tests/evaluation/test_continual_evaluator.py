"""
Golden tests of ContinualEvaluator on a tiny COCO dataset whose APs are known by construction.

The dataset: 4 images of 40x48 pixels, 4 classes, 2 rectangular instances per class. Its category
ids are not in the scenario's class order (contiguous ids 0..3 are the dataset ids 3, 1, 4, 2), as
with a shuffled class order, so every test also checks that per-class APs reach the right class.
The scenario has tasks [[0, 1], [2, 3]]: old = "1-2" = {0, 1}, new = "3-4" = {2, 3} at step 1.
"""

import json
import math
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import load_coco_json
from detectron2.structures import Boxes, BoxMode, Instances

from ykd.evaluation import ContinualEvaluator, class_groups

HEIGHT, WIDTH = 40, 48
CATEGORY_NAMES = {1: "a", 2: "b", 3: "c", 4: "d"}
CLASS_ORDER = [3, 1, 4, 2]  # dataset category id of each contiguous id
CLASS_NAMES = [CATEGORY_NAMES[i] for i in CLASS_ORDER]  # ["c", "a", "d", "b"]
TASKS = [[0, 1], [2, 3]]
# image id -> (contiguous class, x, y, w, h) of its instances; all are "small" in COCO's sense.
OBJECTS = {
    1: [(0, 2, 2, 10, 12), (2, 20, 5, 15, 10)],
    2: [(1, 5, 20, 12, 8), (3, 25, 22, 14, 14)],
    3: [(0, 30, 3, 10, 10), (1, 4, 4, 16, 10)],
    4: [(2, 3, 25, 10, 10), (3, 22, 2, 12, 20)],
}
# COCO's 101-point interpolation: at recall 0.5 with precision 1, 51 of the 101 recall thresholds
# (0.00, 0.01, ..., 0.50) have precision 1 and the 50 above have 0, so AP = 51 / 101.
HALF_RECALL_COCO_AP = 100 * 51 / 101


def _rectangle_rle(x, y, w, h):
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8, order="F")
    mask[y : y + h, x : x + w] = 1
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _write_coco_json(path):
    images, annotations = [], []
    for image_id, objects in OBJECTS.items():
        images.append(
            {"id": image_id, "file_name": f"{image_id}.png", "height": HEIGHT, "width": WIDTH}
        )
        for c, x, y, w, h in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CLASS_ORDER[c],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": _rectangle_rle(x, y, w, h),
                }
            )
    categories = [{"id": i, "name": name} for i, name in CATEGORY_NAMES.items()]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def _load_step(json_file, image_root, seen_ids):
    """The test set of a step: images with a seen class, seen-class annotations, contiguous ids."""
    to_contiguous = {dataset_id: c for c, dataset_id in enumerate(seen_ids)}
    records = []
    for record in load_coco_json(json_file, image_root):
        record["annotations"] = [
            dict(a, category_id=to_contiguous[a["category_id"]])
            for a in record["annotations"]
            if a["category_id"] in to_contiguous
        ]
        if record["annotations"]:
            records.append(record)
    return records


@pytest.fixture
def register(tmp_path):
    """Register the test set of a step as the lead does; returns its name."""
    json_file = str(tmp_path / "instances.json")
    _write_coco_json(json_file)
    names = []

    def _register(step, tasks=TASKS):
        name = f"ykd_eval_test_{tmp_path.name}_step{step}"
        seen = sum(tasks[: step + 1], [])
        seen_ids = [CLASS_ORDER[c] for c in seen]
        DatasetCatalog.register(name, lambda: _load_step(json_file, str(tmp_path), seen_ids))
        MetadataCatalog.get(name).set(
            thing_classes=[CLASS_NAMES[c] for c in seen],
            thing_dataset_id_to_contiguous_id={i: c for c, i in enumerate(seen_ids)},
            ykd_tasks=tasks[: step + 1],
            ykd_step=step,
            evaluator_type="coco",
        )
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _run(name, output_dir, predict, **kwargs):
    """
    Evaluate detections made from the ground truth: ``predict(c, image_id)`` gives, for an instance
    of contiguous class c in an image, a list of (predicted class, score, mask kind) with mask kind "exact" or
    "empty"; the predicted box is always the ground-truth box.
    """
    evaluator = ContinualEvaluator(name, output_dir=output_dir, distributed=False, **kwargs)
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        boxes, scores, classes, masks = [], [], [], []
        for ann in record["annotations"]:
            box = BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS)
            mask = mask_util.decode(ann["segmentation"]).astype(bool)
            for pred_class, score, mask_kind in predict(ann["category_id"], record["image_id"]):
                boxes.append(box)
                scores.append(score)
                classes.append(pred_class)
                masks.append(mask if mask_kind == "exact" else np.zeros_like(mask))
        instances = Instances((HEIGHT, WIDTH))
        instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.tensor(scores, dtype=torch.float32)
        instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
        instances.pred_masks = torch.from_numpy(
            np.stack(masks) if masks else np.zeros((0, HEIGHT, WIDTH), bool)
        )
        inputs = [{"image_id": record["image_id"], "height": HEIGHT, "width": WIDTH}]
        evaluator.process(inputs, [{"instances": instances}])
    return evaluator.evaluate()


def _perfect(c, image_id):
    return [(c, 0.9, "exact")]


def _assert_groups(results, expected, metrics=("AP", "AP50")):
    for group, value in expected.items():
        for metric in metrics:
            assert results[f"{group}/{metric}"] == pytest.approx(value), f"{group}/{metric}"


def test_perfect_predictions(register, tmp_path):
    results = _run(register(1), str(tmp_path / "out"), _perfect, voc_metric=True, calibration=True)
    groups = {"all": 100, "old": 100, "new": 100, "1-2": 100, "3-4": 100}
    for iou_type in ("bbox", "segm"):
        _assert_groups(results[iou_type], groups, ("AP", "AP50", "vocAP", "vocAP50"))
        assert results[iou_type]["AP"] == pytest.approx(100)
        # Every detection is correct with score 0.9: ECE = |1 - 0.9|.
        _assert_groups(results[iou_type], {"all": 10, "old": 10, "new": 10}, ("ECE",))
        assert {f"AP-{n}" for n in CLASS_NAMES} | {f"vocAP-{n}" for n in CLASS_NAMES} <= set(
            results[iou_type]
        )


def test_old_perfect_new_missing(register, tmp_path):
    results = _run(
        register(1),
        str(tmp_path / "out"),
        lambda c, i: _perfect(c, i) if c < 2 else [],
        voc_metric=True,
    )
    for iou_type in ("bbox", "segm"):
        res = results[iou_type]
        _assert_groups(
            res, {"old": 100, "1-2": 100, "new": 0, "3-4": 0, "all": 50}, ("AP", "vocAP")
        )
        # The per-class keys name the right classes although the category ids are shuffled.
        assert [res[f"AP-{n}"] for n in CLASS_NAMES] == pytest.approx([100, 100, 0, 0])


def test_swapped_old_labels(register, tmp_path):
    swap = {0: 1, 1: 0, 2: 2, 3: 3}
    results = _run(register(1), str(tmp_path / "out"), lambda c, i: [(swap[c], 0.9, "exact")])
    for iou_type in ("bbox", "segm"):
        _assert_groups(results[iou_type], {"old": 0, "new": 100, "all": 50})


def test_half_recall(register, tmp_path):
    # Class 3 ("b") is found in image 2 only: one true positive, recall 0.5 at precision 1.
    # The other classes are perfect.
    def predict(c, image_id):
        return [] if (c, image_id) == (3, 4) else _perfect(c, image_id)

    results = _run(register(1), str(tmp_path / "out"), predict, voc_metric=True)
    for iou_type in ("bbox", "segm"):
        res = results[iou_type]
        assert res["AP-b"] == pytest.approx(HALF_RECALL_COCO_AP)
        _assert_groups(
            res,
            {
                "old": 100,
                "new": (100 + HALF_RECALL_COCO_AP) / 2,
                "all": (300 + HALF_RECALL_COCO_AP) / 4,
            },
        )
        # VOC all-point interpolation: precision 1 up to recall 0.5, then 0, so AP = 0.5 exactly.
        assert res["vocAP-b"] == pytest.approx(50)
        _assert_groups(res, {"new": 75, "all": 87.5}, ("vocAP", "vocAP50"))


def test_segm_uses_masks(register, tmp_path):
    # Right boxes, empty masks for the new classes: box AP is perfect, mask AP of "new" is 0.
    results = _run(
        register(1), str(tmp_path / "out"), lambda c, i: [(c, 0.9, "exact" if c < 2 else "empty")]
    )
    _assert_groups(results["bbox"], {"old": 100, "new": 100, "all": 100})
    _assert_groups(results["segm"], {"old": 100, "new": 0, "all": 50})


def test_step0_has_no_old_group(register, tmp_path):
    output_dir = tmp_path / "out"
    results = _run(register(0), str(output_dir), _perfect, voc_metric=True, calibration=True)
    for iou_type in ("bbox", "segm"):
        res = results[iou_type]
        assert not [key for key in res if key.startswith("old/")]
        _assert_groups(res, {"all": 100, "new": 100, "1-2": 100}, ("AP", "AP50", "vocAP"))
        assert not [key for key in res if key.startswith("3-4/")]
    with open(output_dir / "eval.json") as f:
        assert json.load(f) == _nan_to_none(results)


def _nan_to_none(results):
    return {
        iou_type: {k: None if math.isnan(v) else v for k, v in res.items()}
        for iou_type, res in results.items()
    }


def test_eval_json(register, tmp_path):
    output_dir = tmp_path / "out"
    results = _run(register(1), str(output_dir), _perfect)
    # Every instance is small, so Detectron2's APm and APl are NaN: they become null in the file.
    assert math.isnan(results["segm"]["APm"])

    def reject(constant):
        raise ValueError(f"{constant} in eval.json")

    with open(output_dir / "eval.json") as f:
        saved = json.load(f, parse_constant=reject)
    assert saved == _nan_to_none(results)
    assert saved["segm"]["APm"] is None
    assert saved["segm"]["old/AP"] == pytest.approx(100)
    assert not [p for p in os.listdir(output_dir) if p.endswith(".tmp")]


def test_no_detections_is_ap_zero_for_masks_and_boxes(register, tmp_path):
    results = _run(register(1), str(tmp_path / "out"), lambda c, i: [], voc_metric=True)
    # No detection at all: COCOeval is not run (Detectron2 would infer "bbox" only and report
    # NaN), but every seen class has ground truth, so its AP is 0, for boxes and masks alike.
    for iou_type in ("bbox", "segm"):
        _assert_groups(results[iou_type], {"old": 0, "new": 0, "all": 0}, ("AP", "AP50", "vocAP"))
        assert results[iou_type]["AP"] == 0 and results[iou_type]["AP50"] == 0
        assert {results[iou_type][f"AP-{name}"] for name in CLASS_NAMES} == {0.0}
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["segm"]["all/AP"] == 0


def test_tasks_passed_explicitly_override_metadata(register, tmp_path):
    results = _run(
        register(1), str(tmp_path / "out"), _perfect, class_tasks=[[0, 1, 2], [3]], step=1
    )
    assert {"1-3/AP", "4/AP", "old/AP", "new/AP"} <= set(results["bbox"])


def test_class_groups():
    tasks_15_1 = [list(range(15))] + [[c] for c in range(15, 20)]
    groups = class_groups(tasks_15_1, 2, 17)
    assert list(groups) == ["all", "old", "new", "1-15", "16", "17", "16-17"]
    assert groups["old"] == list(range(16)) and groups["new"] == [16]
    assert list(class_groups([[0, 1], [2, 3]], 0, 2)) == ["all", "new", "1-2"]
    with pytest.raises(ValueError, match="ykd_step"):
        class_groups([[0, 1]], 1, 2)
    with pytest.raises(ValueError, match="in order"):
        class_groups([[0, 2], [1, 3]], 1, 4)
    with pytest.raises(ValueError, match="in order"):
        class_groups([[0, 1], [2, 3]], 1, 3)


def test_unknown_voc_iou_thresholds_are_refused(register, tmp_path):
    with pytest.raises(ValueError, match="VOC IoU thresholds '50:100' are unknown"):
        ContinualEvaluator(
            register(1), output_dir=str(tmp_path), voc_metric=True, voc_iou_thresholds="50:100"
        )
