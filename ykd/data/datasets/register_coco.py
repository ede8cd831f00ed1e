"""COCO 2017 instance segmentation in Detectron2's layout under ``coco/``."""

import os

from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

from .sources import DATASET_SOURCES, DatasetSource, SplitFiles, datasets_root

# COCO's 80 thing classes in category-id order, the scenarios' default order.
COCO_CLASSES = tuple(
    c["name"] for c in sorted(COCO_CATEGORIES, key=lambda c: c["id"]) if c["isthing"]
)


@DATASET_SOURCES.register()
def coco(cfg) -> DatasetSource:
    """``coco/annotations/instances_{train,val}2017.json`` with images in ``coco/{train,val}2017``."""
    root = os.path.join(datasets_root(), "coco")
    return DatasetSource(
        name="coco",
        class_names=COCO_CLASSES,
        train=SplitFiles(
            os.path.join(root, "annotations", "instances_train2017.json"),
            os.path.join(root, "train2017"),
        ),
        test=SplitFiles(
            os.path.join(root, "annotations", "instances_val2017.json"),
            os.path.join(root, "val2017"),
        ),
        mask_format=cfg.INPUT.MASK_FORMAT,
    )
