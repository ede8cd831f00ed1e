"""Source datasets; importing this package registers them in ``DATASET_SOURCES``."""

from . import register_coco, register_synthetic, register_voc_sbd  # noqa: F401  (registration)
from .sources import DATASET_SOURCES, DatasetSource, SplitFiles, build_source, load_source_split

__all__ = ["DATASET_SOURCES", "DatasetSource", "SplitFiles", "build_source", "load_source_split"]
