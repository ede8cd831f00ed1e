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

Modules: :mod:`.validate` (:func:`validate_coco_json`), :mod:`.records` (the schema checks),
:mod:`.image_files` (the image checks), :mod:`.report` (the error and the report).
"""

from .image_files import AUTO_SIZE_CHECK_MAX_IMAGES, CHECK_IMAGES
from .report import NO_POLYGON, OUTSIDE, ZERO_AREA, DatasetValidationError, ValidationReport
from .validate import validate_coco_json

__all__ = [
    "AUTO_SIZE_CHECK_MAX_IMAGES",
    "CHECK_IMAGES",
    "NO_POLYGON",
    "OUTSIDE",
    "ZERO_AREA",
    "DatasetValidationError",
    "ValidationReport",
    "validate_coco_json",
]
