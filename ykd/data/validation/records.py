"""
Schema checks of the records of a COCO-format instances file (categories, images, annotations,
their masks), in one O(n) pass of plain Python. A problem raises :class:`Invalid` with a message
that names the record and the field; the caller adds the file name.
"""

import math

from .report import NO_POLYGON, OUTSIDE, ZERO_AREA, Invalid

__all__ = ["check_annotations", "check_categories", "check_image_records", "short"]

_NUMBER_TYPES = frozenset((int, float))


def _fail(record: str, problem: str):
    raise Invalid(f"{record}: {problem}: fix or remove the record.")


def short(value, limit: int = 60) -> str:
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
        _fail(record, f"must be an object, got {short(item)}")
    for key in keys:
        if key not in item:
            where = f"{record} (id {short(item['id'])})" if "id" in item else record
            _fail(where, f"missing required key {key!r}")


def check_categories(categories: list) -> set:
    """The category ids, after checking every category."""
    if not categories:
        raise Invalid("the list 'categories' is empty: fix the file.")
    ids, names = set(), set()
    for index, category in enumerate(categories):
        _require(category, f"categories[{index}]", ("id", "name"))
        category_id, name = category["id"], category["name"]
        if not _is_int(category_id):
            _fail(f"categories[{index}]", f"'id' must be an integer, got {short(category_id)}")
        record = f"category id {category_id}"
        if category_id in ids:
            _fail(record, "the id is used by another category too")
        if not (isinstance(name, str) and name):
            _fail(record, f"'name' must be a non-empty string, got {short(name)}")
        if name in names:
            _fail(record, f"'name' {name!r} is the name of another category too")
        ids.add(category_id)
        names.add(name)
    return ids


def check_image_records(images: list) -> dict:
    """Image id -> (height, width), after checking every image."""
    sizes = {}
    for index, image in enumerate(images):
        _require(image, f"images[{index}]", ("id", "file_name", "width", "height"))
        image_id = image["id"]
        # COCO's ids are integers; some VOC conversions use strings: Detectron2 takes both.
        if not (_is_int(image_id) or isinstance(image_id, str)):
            _fail(f"images[{index}]", f"'id' must be an integer, got {short(image_id)}")
        record = f"image id {image_id}"
        if image_id in sizes:
            _fail(record, "the id is used by another image too")
        file_name = image["file_name"]
        if not (isinstance(file_name, str) and file_name):
            _fail(record, f"'file_name' must be a non-empty string, got {short(file_name)}")
        for key in ("width", "height"):
            if not _is_size(image[key]):
                _fail(record, f"{key!r} must be a positive integer, got {short(image[key])}")
        sizes[image_id] = (image["height"], image["width"])
    if len(set(map(type, sizes))) > 1:
        raise Invalid("image ids mix integers and strings (use one type): fix the file.")
    return sizes


def check_annotations(annotations: list, sizes: dict, category_ids: set):
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
            _fail(record, f"'id' must be an integer, got {short(annotation_id)}")
        record = f"annotation id {annotation_id}"
        if annotation_id in ids:
            _fail(record, "the id is used by another annotation too")
        ids.add(annotation_id)
        if not (_is_int(image_id) or isinstance(image_id, str)) or image_id not in sizes:
            _fail(record, f"'image_id' {short(image_id)} is not the id of an image in 'images'")
        record = f"annotation id {annotation_id} (image {image_id})"
        category_id = annotation["category_id"]
        if not _is_int(category_id) or category_id not in category_ids:
            _fail(
                record,
                f"'category_id' {short(category_id)} is not among the category ids"
                f" {short(sorted(category_ids))}",
            )
        bbox = annotation["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and _numbers(bbox)):
            _fail(record, f"'bbox' must be 4 numbers [x, y, width, height], got {short(bbox)}")
        x, y, w, h = bbox
        if w < 0 or h < 0:
            _fail(record, f"'bbox' {short(bbox)} has a negative width or height")
        if annotation.get("iscrowd", 0) not in (0, 1):
            _fail(record, f"'iscrowd' must be 0 or 1, got {short(annotation['iscrowd'])}")
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
        _fail(record, f"'segmentation' must be polygons or an RLE, got {short(segmentation)}")
    valid = 0
    for k, polygon in enumerate(segmentation):
        if not (isinstance(polygon, list) and _numbers(polygon)):
            _fail(record, f"'segmentation' polygon {k} must be numbers, got {short(polygon)}")
        if len(polygon) % 2:
            _fail(record, f"'segmentation' polygon {k} has an odd number of coordinates")
        valid += len(polygon) >= 6
    return valid, len(segmentation) - valid


def _check_rle(rle: dict, record: str, height, width) -> None:
    size, counts, image = rle.get("size"), rle.get("counts"), [height, width]
    if not (isinstance(size, list) and len(size) == 2 and all(map(_is_int, size))):
        _fail(record, f"RLE 'size' must be [height, width], got {short(size)}")
    if size != image:
        _fail(record, f"RLE 'size' {size} differs from the image's [height, width] {image}")
    if isinstance(counts, str):
        return
    if not (isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts)):
        _fail(record, f"RLE 'counts' must be a string or run lengths, got {short(counts)}")
    if sum(counts) != height * width:
        _fail(record, f"RLE 'counts' add up to {sum(counts)} pixels, not {height * width}")
