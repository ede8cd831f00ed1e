"""
Source datasets of continual scenarios: where a dataset's COCO-format files are and which classes it
has. Each dataset registers a builder in :data:`DATASET_SOURCES`; the continual splits of every step
are then derived from the source by :mod:`ykd.data.splits`.
"""

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from detectron2.data import MetadataCatalog
from detectron2.data.datasets import load_coco_json
from fvcore.common.registry import Registry

from ..validation import validate_coco_json
from .masks import convert_masks_for_training

DATASET_SOURCES = Registry("DATASET_SOURCES")
# The splits a source may have; "dev" is optional (CONTINUAL.TEST_SPLIT).
SPLITS = ("train", "test", "dev")
DATASET_SOURCES.__doc__ = """
Registry of continual-learning source datasets. A registered object is called with a config,
``builder(cfg) -> DatasetSource`` and registered under its function name, which is the
dataset name of ``CONTINUAL.DATASET``. A builder must not touch the disk: files are checked when loaded.
"""


@dataclass(frozen=True)
class SplitFiles:
    """A COCO-format annotation file and the folder its ``file_name`` entries are relative to."""

    json_file: str
    image_root: str


@dataclass(frozen=True)
class DatasetSource:
    """
    A dataset that continual scenarios are cut from.

    Attributes:
        name: dataset name used in config and registered split names ("synthetic", "voc_sbd", ...).
        class_names: the dataset's class names in its default class order.
        train, test: the files of the training and test splits.
        prepare: called once before the files are read (e.g. to generate the synthetic cache).
        dev: the files of a development split, for choosing settings without the test images
            (``CONTINUAL.TEST_SPLIT "dev"``); None when the dataset has none.
        prepare_dev: called once before the dev files are read (the synthetic dev split).
        mask_format: the ``INPUT.MASK_FORMAT`` the training masks are loaded for ("polygon" or
            "bitmask"; see :mod:`ykd.data.datasets.masks`).
    """

    name: str
    class_names: tuple[str, ...]
    train: SplitFiles
    test: SplitFiles
    prepare: Callable[[], None] | None = field(default=None, compare=False)
    mask_format: str = "bitmask"
    dev: SplitFiles | None = None
    prepare_dev: Callable[[], None] | None = field(default=None, compare=False)

    def split(self, split: str) -> SplitFiles:
        """The files of ``split``: "train", "test" or "dev"."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
        if split == "dev" and self.dev is None:
            raise ValueError(
                f"Dataset {self.name!r} has no dev split: set CONTINUAL.TEST_SPLIT to 'test'"
                " (only the synthetic dataset generates one)."
            )
        return getattr(self, split)


def datasets_root() -> str:
    """Root of real datasets, Detectron2's convention: ``$DETECTRON2_DATASETS`` or ``datasets``."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def build_source(cfg) -> DatasetSource:
    """The source of ``cfg.CONTINUAL.DATASET``; an unknown name lists the known ones."""
    name = cfg.CONTINUAL.DATASET
    if name not in DATASET_SOURCES:
        known = sorted(key for key, _ in DATASET_SOURCES)
        raise KeyError(f"Unknown dataset {name!r} in CONTINUAL.DATASET: use one of {known}.")
    return DATASET_SOURCES.get(name)(cfg)


def load_source_split(source: DatasetSource, split: str) -> list[dict]:
    """
    Load one split ("train", "test" or "dev") of a source in Detectron2's dataset-dict format, with each annotation's
    ``category_id`` replaced by the class NAME under the key ``category_name``.

    The annotation file and its images are validated first (once per process and file version),
    and degenerate annotations dropped: see :mod:`ykd.data.validation`. Masks may be polygons or
    RLE (compressed or not); the RLE masks of a training split are converted to polygons when
    ``source.mask_format`` is "polygon" (:mod:`ykd.data.datasets.masks`).

    Raises:
        FileNotFoundError: naming the missing annotation file or image folder and where to put it.
        DatasetValidationError: naming the file, record and field of bad input.
    """
    files = source.split(split)
    prepare = source.prepare_dev if split == "dev" else source.prepare
    if prepare is not None:
        prepare()
    for path, what in ((files.json_file, "annotation file"), (files.image_root, "image folder")):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Missing {what} {path} of dataset {source.name!r}: put the dataset there"
                " (see datasets/README.md) or set $DETECTRON2_DATASETS to its root."
            )
    mask_format = source.mask_format if split == "train" else "bitmask"
    return _load_named(files.json_file, files.image_root, source.name, split, mask_format)


@functools.lru_cache(maxsize=8)
def _load_named_cached(
    json_file: str, image_root: str, stamp: tuple, metadata_name: str, mask_format: str
):
    report = validate_coco_json(json_file, image_root)
    if metadata_name in MetadataCatalog.list():
        MetadataCatalog.remove(metadata_name)
    dicts = load_coco_json(
        json_file, image_root, dataset_name=metadata_name, extra_annotation_keys=["id"]
    )
    names = MetadataCatalog.get(metadata_name).thing_classes
    for record in report.drop_skipped(dicts):
        for annotation in record.get("annotations", []):
            annotation["category_name"] = names[annotation.pop("category_id")]
    convert_masks_for_training(dicts, mask_format, json_file)
    return dicts


def _load_named(
    json_file: str, image_root: str, dataset: str, split: str, mask_format: str
) -> list[dict]:
    metadata_name = f"ykd_source_{dataset}_{split}"
    stat = os.stat(json_file)
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return _load_named_cached(json_file, image_root, stamp, metadata_name, mask_format)
