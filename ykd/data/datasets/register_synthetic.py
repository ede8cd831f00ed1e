"""The embedded synthetic shapes dataset, generated on first use into a cache folder."""

import functools
import os

from .sources import DATASET_SOURCES, DatasetSource, SplitFiles, datasets_root


@DATASET_SOURCES.register()
def synthetic(cfg) -> DatasetSource:
    """
    ``SYNTHETIC.ROOT`` (default ``$DETECTRON2_DATASETS/synthetic``), made by ``SYNTHETIC.*``; its
    dev split (``SYNTHETIC.NUM_DEV`` images) is generated when first read.
    """
    # Imported here so that `python -m ykd.data.synthetic` does not import its own module twice.
    from ..synthetic import SYNTHETIC_CLASSES, ensure_synthetic, ensure_synthetic_dev

    root = cfg.SYNTHETIC.ROOT or os.path.join(datasets_root(), "synthetic")
    prepare = functools.partial(
        ensure_synthetic,
        root,
        num_train=cfg.SYNTHETIC.NUM_TRAIN,
        num_val=cfg.SYNTHETIC.NUM_VAL,
        image_size=cfg.SYNTHETIC.IMAGE_SIZE,
        seed=cfg.SYNTHETIC.SEED,
    )
    prepare_dev = functools.partial(
        ensure_synthetic_dev,
        root,
        num_dev=cfg.SYNTHETIC.NUM_DEV,
        image_size=cfg.SYNTHETIC.IMAGE_SIZE,
        seed=cfg.SYNTHETIC.SEED,
    )
    return DatasetSource(
        name="synthetic",
        class_names=tuple(SYNTHETIC_CLASSES),
        train=SplitFiles(os.path.join(root, "train.json"), os.path.join(root, "train")),
        test=SplitFiles(os.path.join(root, "val.json"), os.path.join(root, "val")),
        prepare=prepare,
        mask_format=cfg.INPUT.MASK_FORMAT,
        dev=SplitFiles(os.path.join(root, "dev.json"), os.path.join(root, "dev")),
        prepare_dev=prepare_dev,
    )
