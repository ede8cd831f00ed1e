"""
:func:`validate_coco_json`: validate a COCO-format instances file and its images before training
(see :mod:`ykd.data.validation` for what is an error and what is dropped), and log the outcome.
"""

import json
import logging
import time

from .image_files import CHECK_IMAGES, check_image_files, resolve_image_check
from .records import check_annotations, check_categories, check_image_records, short
from .report import MAX_LISTED, DatasetValidationError, Invalid, ValidationReport

__all__ = ["validate_coco_json"]

logger = logging.getLogger(__name__)

_TOP_KEYS = ("images", "annotations", "categories")


def validate_coco_json(
    json_file: str, image_root: str, *, check_images: str = "auto"
) -> ValidationReport:
    """
    Validate a COCO-format instances file and its images (:mod:`ykd.data.validation` says what
    is an error and what is dropped), and log what is dropped.

    The file is parsed here and then again by Detectron2's ``load_coco_json``, which takes a path
    only; the dict is freed in between, so peak memory does not grow.

    Args:
        json_file: the annotation file.
        image_root: the folder that the images' ``file_name`` entries are relative to.
        check_images: one of :data:`CHECK_IMAGES`.
    Returns:
        The report; apply :meth:`ValidationReport.drop_skipped` to the loaded records.
    Raises:
        DatasetValidationError: at the first schema error, or for bad image files.
    """
    if check_images not in CHECK_IMAGES:
        raise ValueError(f"check_images={check_images!r}: use one of {CHECK_IMAGES}")
    start = time.perf_counter()
    try:
        with open(json_file) as f:
            coco = json.load(f)
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise DatasetValidationError(f"{json_file}: not a json file ({e}): fix the file.") from e
    try:
        report = _validate(coco, json_file, image_root, check_images)
    except Invalid as e:
        raise DatasetValidationError(f"{json_file}: {e}") from None
    _log(report, image_root, time.perf_counter() - start)
    return report


def _validate(coco, json_file: str, image_root: str, check_images: str) -> ValidationReport:
    if not isinstance(coco, dict):
        raise Invalid(f"the top level is {short(coco)}, not an object: fix the file.")
    images, annotations, categories = (_top_list(coco, key) for key in _TOP_KEYS)
    category_ids = check_categories(categories)
    sizes = check_image_records(images)
    dropped, polygons_removed, partly_outside = check_annotations(annotations, sizes, category_ids)
    check_images = resolve_image_check(check_images, len(images))
    check_image_files(images, image_root, check_images)
    return ValidationReport(
        json_file=json_file,
        num_images=len(images),
        num_annotations=len(annotations),
        dropped=dropped,
        polygons_removed=polygons_removed,
        boxes_partly_outside=partly_outside,
        image_check=check_images,
    )


def _top_list(coco: dict, key: str) -> list:
    if not isinstance(coco.get(key), list):
        found = "is missing" if key not in coco else f"is {short(coco[key])}"
        raise Invalid(f"the top-level list {key!r} {found}: fix the file.")
    return coco[key]


def _log(report: ValidationReport, image_root: str, seconds: float) -> None:
    file = report.json_file
    for reason, ids in report.dropped.items():
        examples = ", ".join(map(str, ids[:MAX_LISTED])) + ", ..." * (len(ids) > MAX_LISTED)
        logger.warning("%s: dropped %d annotations %s (ids %s).", file, len(ids), reason, examples)
    if report.polygons_removed:
        logger.warning("%s: removed %d polygons of < 3 points.", file, report.polygons_removed)
    logger.info(
        f"Validated {file} in {seconds:.2f}s: {report.num_images} images (files under"
        f" {image_root}: {report.image_check}), {report.num_annotations} annotations,"
        f" {report.num_dropped} dropped; {report.boxes_partly_outside} boxes extend past the image"
        " border (kept: Detectron2 clips them)."
    )
