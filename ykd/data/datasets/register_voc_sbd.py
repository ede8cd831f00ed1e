"""VOC/SBD instance segmentation as MMA uses it: COCO-format SBD json files under ``voc/``."""

import os

from .sources import DATASET_SOURCES, DatasetSource, SplitFiles, datasets_root

# Pascal VOC's 20 classes in their conventional (alphabetical) order, the scenarios' default order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


@DATASET_SOURCES.register()
def voc_sbd(cfg) -> DatasetSource:
    """``$DETECTRON2_DATASETS/voc/pascal_sbd_{train,val}.json``, images relative to ``voc/``."""
    root = os.path.join(datasets_root(), "voc")
    return DatasetSource(
        name="voc_sbd",
        class_names=VOC_CLASSES,
        train=SplitFiles(os.path.join(root, "pascal_sbd_train.json"), root),
        test=SplitFiles(os.path.join(root, "pascal_sbd_val.json"), root),
        mask_format=cfg.INPUT.MASK_FORMAT,
    )
