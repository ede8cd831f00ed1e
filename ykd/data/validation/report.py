"""
What validating a COCO-format file found: the error it raises on bad input and the report of what
it drops (see :mod:`ykd.data.validation`).
"""

from dataclasses import dataclass

__all__ = [
    "MAX_LISTED",
    "NO_POLYGON",
    "OUTSIDE",
    "ZERO_AREA",
    "DatasetValidationError",
    "Invalid",
    "ValidationReport",
]

# Examples listed in a message about many records.
MAX_LISTED = 5

# Reasons for dropping an annotation, as the log says them ("dropped 3 annotations <reason>").
ZERO_AREA = "with a zero-area box"
OUTSIDE = "with a box entirely outside the image"
NO_POLYGON = "without a polygon of 3 or more points"


class DatasetValidationError(ValueError):
    """A COCO-format file or its images cannot be used; the message names file, record and field."""


class Invalid(Exception):
    """Internal: a problem found, as a message without the file name."""


@dataclass(frozen=True)
class ValidationReport:
    """
    What validating a COCO-format file found, when it found no error.

    Attributes:
        json_file: the file.
        num_images, num_annotations: records in the file, dropped annotations included.
        dropped: reason -> ids of the annotations dropped for it (``ZERO_AREA``, ``OUTSIDE``,
            ``NO_POLYGON``); empty for a clean file.
        polygons_removed: polygons of fewer than 3 points in annotations that are kept.
        boxes_partly_outside: kept boxes that extend past the image border.
        image_check: the image check that ran: "sizes", "exists" or "none".
    """

    json_file: str
    num_images: int
    num_annotations: int
    dropped: dict[str, list]
    polygons_removed: int
    boxes_partly_outside: int
    image_check: str

    @property
    def num_dropped(self) -> int:
        return sum(len(ids) for ids in self.dropped.values())

    def drop_skipped(self, records: list[dict]) -> list[dict]:
        """
        Remove the dropped annotations from Detectron2 dataset dicts of this file, loaded with
        ``load_coco_json(..., extra_annotation_keys=["id"])``, and the ``id`` key from the others.

        Returns:
            ``records``, modified in place.
        """
        dropped = {i for ids in self.dropped.values() for i in ids}
        for record in records:
            annotations = record["annotations"]
            record["annotations"] = [a for a in annotations if a.pop("id") not in dropped]
        return records
