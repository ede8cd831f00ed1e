"""
Instance masks of COCO-format files in the form that ``INPUT.MASK_FORMAT`` asks for.

COCO-format files store a mask as polygons (a list of ``[x0, y0, x1, y1, ...]``) or as an RLE
(``{"size": [h, w], "counts": ...}``, compressed string or uncompressed run lengths); SBD's
instance files, for instance, hold RLE. Detectron2's training mapper takes both forms with
``INPUT.MASK_FORMAT bitmask`` (polygons are rasterised, RLE decoded) but polygons only with
``polygon``. The rule of :func:`load_source_split <ykd.data.datasets.sources.load_source_split>`:

- ``bitmask``: masks are kept as they are, exact whatever their form (the VOC/SBD configs' choice,
  as MMA's code reads SBD's masks as binary masks);
- ``polygon``: the RLE masks of non-crowd training annotations are converted to polygons by
  :func:`rle_to_polygons` (lossy: holes are filled, see there) and counted in a warning. Test
  splits are never converted: evaluation reads their masks, RLE included, exactly. Crowd
  annotations are not converted either: the training mapper drops them. An RLE of no pixel has
  no polygon: its annotation is dropped, as Detectron2 drops annotations without a valid polygon.
"""

import logging

import cv2
import numpy as np
import pycocotools.mask as mask_util

__all__ = ["MASK_FORMATS", "convert_masks_for_training", "rle_to_polygons"]

logger = logging.getLogger(__name__)

MASK_FORMATS = ("polygon", "bitmask")


def rle_to_polygons(rle: dict) -> list[list[float]]:
    """
    Polygons that cover a binary mask given as a COCO RLE.

    The mask is upsampled 2x (each pixel a 2x2 block) and each outer contour of it (OpenCV's
    ``findContours``) becomes a polygon through the centres of its boundary sub-pixels, a quarter
    of a pixel inside the pixel edges. Rasterised again as Detectron2 rasterises polygons
    (a pixel is in when its centre is), these polygons give back every pixel of the mask, holes
    excepted: Detectron2 takes the union of an instance's polygons, so a hole is filled.

    Args:
        rle: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
    Returns:
        Polygons ``[x0, y0, x1, y1, ...]`` in pixel coordinates, 4 points or more each; empty for
        an empty mask.
    """
    if isinstance(rle["counts"], list):
        rle = mask_util.frPyObjects(rle, *rle["size"])
    mask = mask_util.decode(rle).astype(np.uint8)
    upsampled = np.ascontiguousarray(mask.repeat(2, axis=0).repeat(2, axis=1))
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [((c.reshape(-1).astype(np.float64) + 0.5) / 2).tolist() for c in contours]


def convert_masks_for_training(records: list[dict], mask_format: str, file: str) -> int:
    """
    Make the masks of training records usable with ``mask_format`` (the module's rule): with
    ``"polygon"``, replace each non-crowd RLE segmentation by :func:`rle_to_polygons` in place,
    and drop the annotations whose RLE has no pixel.

    Args:
        records: Detectron2 dataset dicts of one file.
        mask_format: ``INPUT.MASK_FORMAT``.
        file: the annotation file, named in the warning.
    Returns:
        The number of masks converted.
    Raises:
        ValueError: an unknown ``mask_format``.
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError(
            f"INPUT.MASK_FORMAT {mask_format!r} is unknown: use one of {MASK_FORMATS}."
        )
    if mask_format == "bitmask":
        return 0
    converted = empty = 0
    for record in records:
        kept = []
        for annotation in record.get("annotations", []):
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, dict) and not annotation.get("iscrowd", 0):
                annotation["segmentation"] = rle_to_polygons(segmentation)
                converted += 1
                if not annotation["segmentation"]:
                    empty += 1
                    continue
            kept.append(annotation)
        if "annotations" in record:
            record["annotations"] = kept
    if converted:
        logger.warning(
            "%s: converted %d RLE masks to polygons for INPUT.MASK_FORMAT polygon (holes filled,"
            " %d empty masks dropped); set INPUT.MASK_FORMAT bitmask to train on the exact masks.",
            file,
            converted,
            empty,
        )
    return converted
