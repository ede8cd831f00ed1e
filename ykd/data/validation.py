"""
Up-front validation of COCO-format annotation files (COCO, SBD, the synthetic cache), so that bad
input stops the run before training starts, with a message that names the file, the record and the
field. :func:`validate_coco_json` reads the file in one O(n) pass of plain Python.

Schema errors raise :class:`DatasetValidationError` (one line: file, record, problem, fix):

- the file is not json, or lacks the ``images``, ``annotations`` or ``categories`` list;
- a required key is missing (images: id, file_name, width, height; annotations: id, image_id,
  category_id, bbox; categories: id, name) or a value has the wrong type;
- an image, annotation or category id is repeated, or a category name;
- an annotation refers to an image id or a category id that the file does not define;
- a box of negative width or height; a polygon with an odd number of coordinates;
- an RLE whose ``size`` differs from the image's (height, width), or whose run lengths do not add
  up to it;
- some annotations have a ``segmentation`` and others none (Detectron2 would fail, or silently
  train without masks, in the middle of a run); ``ignore`` set (Detectron2 does not support it);
- image files that are missing, unreadable or of another size than the json says (one error that
  lists the first few and the count; see ``check_images``).

Degenerate annotations are dropped with a warning that counts them, as Detectron2 users expect:

- a box of zero width or height, or a box entirely outside its image;
- an annotation none of whose polygons has 3 or more points (Detectron2 drops it too, and removes
  such polygons from the others: they are counted in ``polygons_removed``).

Boxes that extend partly past the image border are kept (Detectron2 clips them) and counted.
"""

import json
import logging
import math
import os
import time
from dataclasses import dataclass

from PIL import Image

__all__ = ["CHECK_IMAGES", "DatasetValidationError", "ValidationReport", "validate_coco_json"]

logger = logging.getLogger(__name__)

# What to check of the image files:
#   "sizes":  each file exists and its header (pixels are not decoded) gives the json's width and
#             height, after the EXIF rotation that Detectron2's `read_image` applies;
#   "exists": each file exists (one `stat` per image);
#   "none":   no file access;
#   "auto":   "sizes" up to AUTO_SIZE_CHECK_MAX_IMAGES images, "exists" above. A header read
#             costs ~0.1 ms from the page cache (0.19 s for 2000 synthetic PNGs) but a random read
#             on a cold or network disk, i.e. minutes for COCO train's 118K images, whose sizes
#             Detectron2 checks anyway as it reads them for training; a stat per file stays cheap.
CHECK_IMAGES = ("auto", "sizes", "exists", "none")
AUTO_SIZE_CHECK_MAX_IMAGES = 20_000
# Examples listed in a message about many records.
MAX_LISTED = 5
_TOP_KEYS = ("images", "annotations", "categories")

# Reasons for dropping an annotation, as the log says them ("dropped 3 annotations <reason>").
ZERO_AREA = "with a zero-area box"
OUTSIDE = "with a box entirely outside the image"
NO_POLYGON = "without a polygon of 3 or more points"

_NUMBER_TYPES = frozenset((int, float))
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset((5, 6, 7, 8))


class DatasetValidationError(ValueError):
    """A COCO-format file or its images cannot be used; the message names file, record and field."""


class _Invalid(Exception):
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


def validate_coco_json(
    json_file: str, image_root: str, *, check_images: str = "auto"
) -> ValidationReport:
    """
    Validate a COCO-format instances file and its images (see the module docstring for what is an
    error and what is dropped), and log what is dropped.

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
    except _Invalid as e:
        raise DatasetValidationError(f"{json_file}: {e}") from None
    _log(report, image_root, time.perf_counter() - start)
    return report


def _validate(coco, json_file: str, image_root: str, check_images: str) -> ValidationReport:
    if not isinstance(coco, dict):
        raise _Invalid(f"the top level is {_short(coco)}, not an object: fix the file.")
    images, annotations, categories = (_top_list(coco, key) for key in _TOP_KEYS)
    category_ids = _check_categories(categories)
    sizes = _check_images(images)
    dropped, polygons_removed, partly_outside = _check_annotations(annotations, sizes, category_ids)
    if check_images == "auto":
        check_images = "sizes" if len(images) <= AUTO_SIZE_CHECK_MAX_IMAGES else "exists"
    _check_image_files(images, image_root, check_images)
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
        found = "is missing" if key not in coco else f"is {_short(coco[key])}"
        raise _Invalid(f"the top-level list {key!r} {found}: fix the file.")
    return coco[key]


def _fail(record: str, problem: str):
    raise _Invalid(f"{record}: {problem}: fix or remove the record.")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value) -> bool:
    return type(value) is int


def _is_size(value) -> bool:
    """A positive pixel count; integral floats (640.0) are accepted, as Detectron2 accepts them."""
    return type(value) in _NUMBER_TYPES and value > 0 and float(value).is_integer()


def _numbers(values: list) -> bool:
    """Whether a list holds finite numbers only (no bools, strings, NaN or infinities)."""
    return set(map(type, values)) <= _NUMBER_TYPES and math.isfinite(sum(values))


def _require(item, record: str, keys: tuple[str, ...]) -> None:
    """Fail unless ``item`` is a dict with ``keys``; ``record`` is its position, e.g. "images[4]"."""
    if not isinstance(item, dict):
        _fail(record, f"must be an object, got {_short(item)}")
    for key in keys:
        if key not in item:
            where = f"{record} (id {_short(item['id'])})" if "id" in item else record
            _fail(where, f"missing required key {key!r}")


def _check_categories(categories: list) -> set:
    """The category ids, after checking every category."""
    if not categories:
        raise _Invalid("the list 'categories' is empty: fix the file.")
    ids, names = set(), set()
    for index, category in enumerate(categories):
        _require(category, f"categories[{index}]", ("id", "name"))
        category_id, name = category["id"], category["name"]
        if not _is_int(category_id):
            _fail(f"categories[{index}]", f"'id' must be an integer, got {_short(category_id)}")
        record = f"category id {category_id}"
        if category_id in ids:
            _fail(record, "the id is used by another category too")
        if not (isinstance(name, str) and name):
            _fail(record, f"'name' must be a non-empty string, got {_short(name)}")
        if name in names:
            _fail(record, f"'name' {name!r} is the name of another category too")
        ids.add(category_id)
        names.add(name)
    return ids


def _check_images(images: list) -> dict:
    """Image id -> (height, width), after checking every image."""
    sizes = {}
    for index, image in enumerate(images):
        _require(image, f"images[{index}]", ("id", "file_name", "width", "height"))
        image_id = image["id"]
        # COCO's ids are integers; some VOC conversions use strings: Detectron2 takes both.
        if not (_is_int(image_id) or isinstance(image_id, str)):
            _fail(f"images[{index}]", f"'id' must be an integer, got {_short(image_id)}")
        record = f"image id {image_id}"
        if image_id in sizes:
            _fail(record, "the id is used by another image too")
        file_name = image["file_name"]
        if not (isinstance(file_name, str) and file_name):
            _fail(record, f"'file_name' must be a non-empty string, got {_short(file_name)}")
        for key in ("width", "height"):
            if not _is_size(image[key]):
                _fail(record, f"{key!r} must be a positive integer, got {_short(image[key])}")
        sizes[image_id] = (image["height"], image["width"])
    if len(set(map(type, sizes))) > 1:
        raise _Invalid("image ids mix integers and strings (use one type): fix the file.")
    return sizes


def _check_annotations(annotations: list, sizes: dict, category_ids: set):
    """
    Check every annotation and pick the degenerate ones to drop.

    Returns:
        dropped: reason -> ids of the dropped annotations.
        polygons_removed: polygons of < 3 points in kept annotations.
        partly_outside: kept boxes that extend past the image border.
    """
    ids = set()
    dropped: dict[str, list] = {}
    polygons_removed = partly_outside = 0
    num_with_masks, first_without_mask = 0, None
    for index, annotation in enumerate(annotations):
        record = f"annotations[{index}]"
        _require(annotation, record, ("id", "image_id", "category_id", "bbox"))
        annotation_id, image_id = annotation["id"], annotation["image_id"]
        if not _is_int(annotation_id):
            _fail(record, f"'id' must be an integer, got {_short(annotation_id)}")
        record = f"annotation id {annotation_id}"
        if annotation_id in ids:
            _fail(record, "the id is used by another annotation too")
        ids.add(annotation_id)
        if not (_is_int(image_id) or isinstance(image_id, str)) or image_id not in sizes:
            _fail(record, f"'image_id' {_short(image_id)} is not the id of an image in 'images'")
        record = f"annotation id {annotation_id} (image {image_id})"
        category_id = annotation["category_id"]
        if not _is_int(category_id) or category_id not in category_ids:
            _fail(
                record,
                f"'category_id' {_short(category_id)} is not among the category ids"
                f" {_short(sorted(category_ids))}",
            )
        bbox = annotation["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and _numbers(bbox)):
            _fail(record, f"'bbox' must be 4 numbers [x, y, width, height], got {_short(bbox)}")
        x, y, w, h = bbox
        if w < 0 or h < 0:
            _fail(record, f"'bbox' {_short(bbox)} has a negative width or height")
        if annotation.get("iscrowd", 0) not in (0, 1):
            _fail(record, f"'iscrowd' must be 0 or 1, got {_short(annotation['iscrowd'])}")
        if annotation.get("ignore", 0):
            _fail(record, "'ignore' is set, which Detectron2 does not support")
        height, width = sizes[image_id]
        segmentation = annotation.get("segmentation")
        polygons, degenerate = (
            _check_segmentation(segmentation, record, height, width) if segmentation else (0, 0)
        )
        if segmentation:
            num_with_masks += 1
        elif first_without_mask is None:
            first_without_mask = record

        if w == 0 or h == 0:
            reason = ZERO_AREA
        elif x >= width or y >= height or x + w <= 0 or y + h <= 0:
            reason = OUTSIDE
        elif segmentation and polygons == 0:
            reason = NO_POLYGON
        else:
            polygons_removed += degenerate
            partly_outside += x < 0 or y < 0 or x + w > width or y + h > height
            continue
        dropped.setdefault(reason, []).append(annotation_id)
    if num_with_masks and first_without_mask is not None:
        _fail(
            first_without_mask,
            f"no 'segmentation', while {num_with_masks} other annotations have one:"
            " give every annotation a mask, or none",
        )
    return dropped, polygons_removed, partly_outside


def _check_segmentation(segmentation, record: str, height, width) -> tuple[int, int]:
    """(polygons of >= 3 points, polygons of fewer) of a polygon list; (1, 0) for an RLE."""
    if isinstance(segmentation, dict):
        _check_rle(segmentation, record, height, width)
        return 1, 0
    if not isinstance(segmentation, list):
        _fail(record, f"'segmentation' must be polygons or an RLE, got {_short(segmentation)}")
    valid = 0
    for k, polygon in enumerate(segmentation):
        if not (isinstance(polygon, list) and _numbers(polygon)):
            _fail(record, f"'segmentation' polygon {k} must be numbers, got {_short(polygon)}")
        if len(polygon) % 2:
            _fail(record, f"'segmentation' polygon {k} has an odd number of coordinates")
        valid += len(polygon) >= 6
    return valid, len(segmentation) - valid


def _check_rle(rle: dict, record: str, height, width) -> None:
    size, counts, image = rle.get("size"), rle.get("counts"), [height, width]
    if not (isinstance(size, list) and len(size) == 2 and all(map(_is_int, size))):
        _fail(record, f"RLE 'size' must be [height, width], got {_short(size)}")
    if size != image:
        _fail(record, f"RLE 'size' {size} differs from the image's [height, width] {image}")
    if isinstance(counts, str):
        return
    if not (isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts)):
        _fail(record, f"RLE 'counts' must be a string or run lengths, got {_short(counts)}")
    if sum(counts) != height * width:
        _fail(record, f"RLE 'counts' add up to {sum(counts)} pixels, not {height * width}")


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image as Detectron2's ``read_image`` sees it, from its header only."""
    with Image.open(path) as image:
        width, height = image.size
        # Only EXIF found in the header: `getexif()` would decode a PNG to look for more.
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION) if "exif" in image.info else None
        except Exception:  # a broken EXIF block: ignored, as Detectron2's `read_image` does
            orientation = None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def _check_image_files(images: list, image_root: str, check: str) -> None:
    if check == "none":
        return
    missing, unreadable, resized = [], [], []
    for image in images:
        path = os.path.join(image_root, image["file_name"])
        if check == "exists":
            if not os.path.isfile(path):
                missing.append(path)
            continue
        try:
            size = _image_size(path)
        except FileNotFoundError:
            missing.append(path)
            continue
        except (OSError, Image.DecompressionBombError) as e:
            unreadable.append(f"{path} ({e})")
            continue
        if size != (image["width"], image["height"]):
            resized.append(
                f"image id {image['id']}: {path} is {size[0]}x{size[1]},"
                f" the json says {image['width']}x{image['height']}"
            )
    for problems, what, fix in (
        (missing, "missing", "put the images there or fix their 'file_name'"),
        (unreadable, "unreadable", "replace the files"),
        (resized, "of another size (width x height) than the json says", "fix 'width'/'height'"),
    ):
        if problems:
            raise _Invalid(
                f"{len(problems)} of {len(images)} image files under {image_root} are {what},"
                f" e.g. {'; '.join(problems[:MAX_LISTED])}: {fix}."
            )


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
