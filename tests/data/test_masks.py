"""
Masks as polygons or RLE (compressed or uncompressed) through the VOC/SBD and COCO loaders
(ykd/data/datasets/masks.py, sources.py) and a few training iterations of the VOC and COCO configs
on CPU (tiny images, random weights).
"""

import json
import logging
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import detection_utils as utils
from detectron2.structures.masks import polygons_to_bitmask
from PIL import Image

from tests.conftest import REPO_ROOT, load_tool
from ykd.data.datasets import build_source, load_source_split
from ykd.data.datasets.masks import convert_masks_for_training, rle_to_polygons
from ykd.data.datasets.register_voc_sbd import VOC_CLASSES
from ykd.engine import get_ykd_cfg

SIZE = 48
MASK_KINDS = ("polygon", "rle", "rle_uncompressed")
# Image id -> VOC class ids (1-based) of its instances: every image has a class of 1-19 and a
# tvmonitor (20) in two images, so that step 0 and step 1 of 19-1 have training and test images.
IMAGES = {1: [1, 15], 2: [7, 20], 3: [15, 12], 4: [3, 20], 5: [15, 8], 6: [2, 9]}


def _rectangle(image_id: int, index: int) -> tuple[int, int, int, int]:
    """Integer x0, y0, x1, y1 of a distinct rectangle per instance, inside the image."""
    x0, y0 = 4 + 3 * ((image_id + index) % 5), 6 + 2 * ((2 * image_id + index) % 5)
    return x0, y0, x0 + 14 + 2 * index, y0 + 10


def _pixels(rectangle) -> np.ndarray:
    x0, y0, x1, y1 = rectangle
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _segmentation(rectangle, kind: str):
    x0, y0, x1, y1 = rectangle
    if kind == "polygon":
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]
    rle = mask_util.encode(np.asfortranarray(_pixels(rectangle)))
    if kind == "rle":
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    # Uncompressed: run lengths of the column-major pixels, starting with a run of zeros.
    flat = _pixels(rectangle).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    return {"size": [SIZE, SIZE], "counts": ([0] if flat[0] else []) + counts}


def write_voc_sbd(root, kind: str) -> None:
    """``<root>/voc/pascal_sbd_{train,val}.json`` with the same images and masks of ``kind``."""
    voc = os.path.join(root, "voc")
    os.makedirs(os.path.join(voc, "images"), exist_ok=True)
    rng = np.random.default_rng(0)
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(VOC_CLASSES)]
    for image_id, classes in IMAGES.items():
        file_name = f"images/{image_id:04d}.png"
        pixels = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(voc, file_name))
        coco["images"].append(
            {"id": image_id, "file_name": file_name, "height": SIZE, "width": SIZE}
        )
        for index, class_id in enumerate(classes):
            rectangle = _rectangle(image_id, index)
            x0, y0, x1, y1 = rectangle
            coco["annotations"].append(
                {
                    "id": 100 * image_id + index,
                    "image_id": image_id,
                    "category_id": class_id,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": _segmentation(rectangle, kind),
                }
            )
    for split in ("train", "val"):
        with open(os.path.join(voc, f"pascal_sbd_{split}.json"), "w") as f:
            json.dump(coco, f)


def test_uncompressed_fixture_is_the_compressed_mask():
    rectangle = _rectangle(2, 1)
    rle = _segmentation(rectangle, "rle_uncompressed")
    decoded = mask_util.decode(mask_util.frPyObjects(rle, SIZE, SIZE))
    assert np.array_equal(decoded, _pixels(rectangle))


@pytest.mark.parametrize("compressed", [True, False])
def test_rle_to_polygons_gives_back_every_pixel(compressed):
    # Two components: a disc and a one-pixel-wide diagonal segment, away from each other.
    mask = np.zeros((30, 40), dtype=np.uint8)
    yy, xx = np.mgrid[:30, :40]
    mask[(yy - 12) ** 2 + (xx - 10) ** 2 <= 36] = 1
    for k in range(8):
        mask[3 + k, 25 + k] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    if not compressed:
        flat = mask.ravel(order="F")
        bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
        rle = {"size": [30, 40], "counts": np.diff(bounds).tolist()}
    polygons = rle_to_polygons(rle)
    assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    assert np.array_equal(polygons_to_bitmask(polygons, 30, 40), mask.astype(bool))


def test_rle_to_polygons_fills_holes_and_is_empty_for_no_pixel():
    ring = np.zeros((12, 12), dtype=np.uint8)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0
    polygons = rle_to_polygons(mask_util.encode(np.asfortranarray(ring)))
    filled = np.zeros((12, 12), dtype=bool)
    filled[2:10, 2:10] = True
    assert np.array_equal(polygons_to_bitmask(polygons, 12, 12), filled)
    empty = mask_util.encode(np.asfortranarray(np.zeros((5, 5), dtype=np.uint8)))
    assert rle_to_polygons(empty) == []


def test_polygon_format_converts_training_rle_drops_empty_and_keeps_crowds(caplog):
    def rle(mask):
        return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))

    block = np.zeros((8, 8)), np.zeros((8, 8))
    block[0][1:4, 2:6] = 1
    crowd = {"iscrowd": 1, "segmentation": rle(block[0])}
    records = [
        {
            "annotations": [
                {"segmentation": rle(block[0])},
                {"segmentation": rle(block[1])},  # no pixel
                crowd,
                {"segmentation": [[0, 0, 2, 0, 2, 2]]},
            ]
        }
    ]
    assert convert_masks_for_training(records, "bitmask", "x.json") == 0
    assert isinstance(records[0]["annotations"][0]["segmentation"], dict)
    with caplog.at_level(logging.WARNING):
        assert convert_masks_for_training(records, "polygon", "x.json") == 2
    assert "x.json: converted 2 RLE masks to polygons" in caplog.text
    assert "1 empty masks dropped" in caplog.text
    kept = records[0]["annotations"]
    assert len(kept) == 3 and kept[1] is crowd and isinstance(crowd["segmentation"], dict)
    assert kept[2]["segmentation"] == [[0, 0, 2, 0, 2, 2]]
    assert np.array_equal(polygons_to_bitmask(kept[0]["segmentation"], 8, 8), block[0] > 0)
    with pytest.raises(ValueError, match="INPUT.MASK_FORMAT 'rle' is unknown"):
        convert_masks_for_training(records, "rle", "x.json")


def _voc_cfg(mask_format: str):
    cfg = get_ykd_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "voc_sbd", "mma.yaml"))
    cfg.INPUT.MASK_FORMAT = mask_format
    return cfg


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("mask_format", ["bitmask", "polygon"])
def test_voc_sbd_loader_gives_the_masks_to_the_mapper(tmp_path, monkeypatch, kind, mask_format):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    write_voc_sbd(tmp_path, kind)
    source = build_source(_voc_cfg(mask_format))
    assert source.mask_format == mask_format
    records = load_source_split(source, "train")
    assert [r["image_id"] for r in records] == list(IMAGES)
    for record in records:
        annotations = record["annotations"]
        for annotation in annotations:
            annotation["category_id"] = 0
        instances = utils.annotations_to_instances(annotations, (SIZE, SIZE), mask_format)
        masks = instances.gt_masks
        bitmasks = (
            masks.tensor.numpy()
            if mask_format == "bitmask"
            else np.stack([polygons_to_bitmask(p, SIZE, SIZE) for p in masks.polygons])
        )
        expected = [_pixels(_rectangle(record["image_id"], i)) for i in range(len(annotations))]
        assert np.array_equal(bitmasks, np.stack(expected).astype(bool))
    # The test split keeps its masks as stored, for an exact evaluation.
    test_records = load_source_split(source, "test")
    segmentation = test_records[0]["annotations"][0]["segmentation"]
    assert isinstance(segmentation, list if kind == "polygon" else dict)


# A few iterations of the R-50-C4 VOC config from random weights on the 48 px fixture; GroupNorm
# keeps the activations of an untrained R-50 finite (its frozen BN would not normalise them).
TINY_OPTS = [
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNETS.NORM", "GN",
    "INPUT.MIN_SIZE_TRAIN", "(48,)",
    "INPUT.MAX_SIZE_TRAIN", "48", "INPUT.MIN_SIZE_TEST", "48", "INPUT.MAX_SIZE_TEST", "48",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "32", "MODEL.RPN.PRE_NMS_TOPK_TEST", "64",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "16", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.BASE_LR", "0.001", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "0", "SOLVER.CHECKPOINT_PERIOD", "100", "DATALOADER.NUM_WORKERS", "0",
    "SEED", "1", "CONTINUAL.VIS_NUM_IMAGES", "0", "CONTINUAL.STEP_RULES", "[]",
    "CONTINUAL.INCREMENTAL_OPTS", "['SOLVER.MAX_ITER', '2', 'SOLVER.STEPS', '()']",
]  # fmt: skip


# Uncompressed RLE reaches the mapper as compressed RLE (Detectron2's loader converts it): the loader
# test above covers it, training runs on the two forms the mapper sees.
@pytest.mark.parametrize("kind", ["polygon", "rle"])
def test_voc_config_trains_both_steps_on_polygons_and_rle(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    write_voc_sbd(tmp_path, kind)
    train_net = load_tool("train_net")
    config = os.path.join(REPO_ROOT, "configs", "voc_sbd", "mma.yaml")
    for step in (0, 1):
        argv = ["--config-file", config, "--scenario", "19-1", "--step", str(step)]
        opts = TINY_OPTS + ["CONTINUAL.OUTPUT_ROOT", str(tmp_path / "out")]
        results = train_net.main(train_net.build_parser().parse_args(argv + opts))
        assert "all/AP" in results["segm"], step
    record = json.loads(
        (tmp_path / "out" / "voc_sbd" / "19-1" / "mma" / "results.json").read_text()
    )
    assert [step["step"] for step in record["steps"]] == [0, 1]
