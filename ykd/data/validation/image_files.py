"""
Checks of the image files of a COCO-format file: each exists and, for "sizes", has the width and
height that the json says, read from its header (pixels are not decoded).
"""

import os

from PIL import Image

from .report import MAX_LISTED, Invalid

__all__ = ["AUTO_SIZE_CHECK_MAX_IMAGES", "CHECK_IMAGES", "check_image_files", "resolve_image_check"]

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
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset((5, 6, 7, 8))


def resolve_image_check(check: str, num_images: int) -> str:
    """The check that ``check`` means for a file of ``num_images`` images ("auto" resolved)."""
    if check != "auto":
        return check
    return "sizes" if num_images <= AUTO_SIZE_CHECK_MAX_IMAGES else "exists"


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


def check_image_files(images: list, image_root: str, check: str) -> None:
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
            raise Invalid(
                f"{len(problems)} of {len(images)} image files under {image_root} are {what},"
                f" e.g. {'; '.join(problems[:MAX_LISTED])}: {fix}."
            )
