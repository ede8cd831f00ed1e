"""
Embedded synthetic instance-segmentation dataset: 20 classes of coloured shapes.

Each class is a shape family (circle, square, triangle, star, cross) in a colour family (red, yellow,
green, blue). An image holds 1-6 instances on a textured, low-contrast background; instances are drawn
in order, so later ones occlude earlier ones, and each annotation is the exact visible mask. A placement
that would leave an earlier instance with less than ``MIN_VISIBLE_FRACTION`` of its area (or fewer than
``MIN_AREA_PX`` pixels) is rejected and re-sampled, so occlusion stays partial. Every image is drawn from
its own generator seeded by ``(seed, split, index)``, which makes the output independent of the order of
generation and byte-identical for equal parameters.

The dataset is written once in COCO format under a cache folder::

    <root>/train.json, <root>/val.json    COCO instances, RLE segmentations
    <root>/train/000001.png ...           images, ``file_name`` is relative to the split folder
    <root>/params.json                    generation parameters, written last: marks a finished cache

A third, development split (``dev.json``, ``dev/``) is drawn the same way from ``(seed, "dev", index)``
on request only (:func:`ensure_synthetic_dev`), with its own marker ``dev_params.json``: it is for
choosing settings without looking at the validation (test) images, and never touches the cache of
``train`` and ``val``.

Command line: ``python -m ykd.data.synthetic --out DIR --num-train N --num-val M``.
"""

import argparse
import colorsys
import fcntl
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager

import cv2
import numpy as np
import pycocotools.mask as mask_util

from ..utils import write_json_atomic

__all__ = [
    "SYNTHETIC_CLASSES",
    "ensure_synthetic",
    "ensure_synthetic_dev",
    "generate_synthetic",
    "main",
]

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "star", "cross")
# Centre hue of each colour family, in degrees.
COLOUR_HUES = {"red": 0.0, "yellow": 55.0, "green": 120.0, "blue": 225.0}
SYNTHETIC_CLASSES: list[str] = [f"{colour}_{shape}" for shape in SHAPES for colour in COLOUR_HUES]

# Bump when the drawing changes, so that caches made by an older generator are regenerated.
GENERATOR_VERSION = 1
SPLIT_IDS = {"train": 0, "val": 1, "dev": 2}
# The splits of the main cache (params.json); "dev" has its own (dev_params.json).
CACHE_SPLITS = ("train", "val")
MAX_INSTANCES = 6
# Shape extent as a fraction of the image size (12-60 px at 128 px), and its floor in pixels.
SIZE_RANGE = (0.1, 0.47)
MIN_SIZE_PX = 10
MIN_AREA_PX = 20
MIN_VISIBLE_FRACTION = 0.7
PLACEMENT_TRIES = 20
HUE_JITTER_DEG = 8.0
SATURATION_RANGE = (0.6, 1.0)
VALUE_RANGE = (0.65, 1.0)
_POLYGON_SHIFT = 4  # sub-pixel bits for cv2.fillPoly


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``(K, 2)`` points about the origin by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _polar(radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``(K, 2)`` points (x, y) from polar coordinates."""
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _shape_polygon(shape: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """
    Outline of one shape centred on the origin, with random proportions and rotation.

    Args:
        shape: one of ``SHAPES``.
        size: extent of the shape in pixels (diameter of its circumscribed circle, roughly).
        rng: random generator.

    Returns:
        ``(K, 2)`` float array of polygon vertices (x, y).
    """
    r = size / 2
    if shape == "circle":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        points = _polar(np.full(48, r), angles) * [1.0, rng.uniform(0.85, 1.0)]
    elif shape == "square":
        half = r * 0.75
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [
            half,
            half * rng.uniform(0.8, 1.0),
        ]
    elif shape == "triangle":
        angles = np.deg2rad(90 + 120 * np.arange(3) + rng.uniform(-8, 8, 3))
        points = _polar(r * rng.uniform(0.9, 1.0, 3), angles)
    elif shape == "star":
        radii = np.tile([r, r * rng.uniform(0.4, 0.5)], 5)
        points = _polar(radii, np.linspace(0, 2 * np.pi, 10, endpoint=False))
    elif shape == "cross":
        w = r * rng.uniform(0.3, 0.38)
        arm = np.array([[w, -w], [r, -w], [r, w], [w, w]])
        points = np.concatenate([_rotate(arm, k * np.pi / 2) for k in range(4)])
    else:
        raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}")
    return _rotate(points, rng.uniform(0, 2 * np.pi))


def _rasterise(points: np.ndarray, image_size: int) -> np.ndarray:
    """Boolean ``(S, S)`` mask of a polygon given in pixel coordinates."""
    mask = np.zeros((image_size, image_size), dtype=np.uint8)
    fixed = np.round(points * (1 << _POLYGON_SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=_POLYGON_SHIFT)
    return mask.astype(bool)


def _hsv_to_rgb255(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    """RGB colour in [0, 255] as a float array of shape (3,)."""
    return np.array(colorsys.hsv_to_rgb((hue_deg / 360.0) % 1.0, saturation, value)) * 255.0


def _background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """
    A textured, weakly saturated background: a tinted grey, smooth blotches, optional stripes, noise.

    Returns:
        ``(S, S, 3)`` float32 RGB image in [0, 255] (not clipped).
    """
    s = image_size
    base = _hsv_to_rgb255(rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.7))
    grid = int(rng.integers(2, 9))
    blotches = rng.normal(0, 1, (grid, grid, 4)).astype(np.float32)
    blotches = cv2.resize(blotches, (s, s), interpolation=cv2.INTER_CUBIC)
    image = base + blotches[..., :1] * rng.uniform(8, 25) + blotches[..., 1:] * 5.0
    if rng.random() < 0.5:
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(0.05, 0.2) * s
        y, x = np.mgrid[0:s, 0:s]
        phase = (x * np.cos(theta) + y * np.sin(theta)) * (2 * np.pi / period)
        image = image + (np.sin(phase) * rng.uniform(3, 10))[..., None]
    return image.astype(np.float32)


def _paint(
    image: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator
) -> None:
    """Fill ``mask`` of ``image`` in place with ``colour`` under a random linear shading gradient."""
    ys, xs = np.nonzero(mask)
    direction = rng.uniform(0, 2 * np.pi)
    proj = (xs - xs.mean()) * np.cos(direction) + (ys - ys.mean()) * np.sin(direction)
    proj = proj / max(np.abs(proj).max(), 1.0)
    shade = 1.0 + rng.uniform(0.0, 0.2) * proj
    image[ys, xs] = colour * shade[:, None]


def _place(
    rng: np.random.Generator,
    shape: str,
    image_size: int,
    masks: list[np.ndarray],
    full_areas: list[int],
) -> np.ndarray | None:
    """
    Sample size, pose and position of one shape so that it lies inside the image and leaves every
    earlier instance at least ``MIN_VISIBLE_FRACTION`` of its full area (and ``MIN_AREA_PX`` pixels).

    Args:
        rng: random generator.
        shape: one of ``SHAPES``.
        image_size: side S of the image.
        masks: current visible masks of the earlier instances.
        full_areas: unoccluded area of each earlier instance.

    Returns:
        The ``(S, S)`` boolean mask of the new shape, or None if ``PLACEMENT_TRIES`` tries all failed.
    """
    low, high = (max(MIN_SIZE_PX, f * image_size) for f in SIZE_RANGE)
    for _ in range(PLACEMENT_TRIES):
        points = _shape_polygon(shape, rng.uniform(low, high), rng)
        lo, hi = -points.min(axis=0), image_size - 1 - points.max(axis=0)
        if np.any(hi < lo):
            continue
        mask = _rasterise(points + rng.uniform(lo, hi), image_size)
        if mask.sum() < MIN_AREA_PX:
            continue
        if all(
            (m & ~mask).sum() >= max(MIN_VISIBLE_FRACTION * full, MIN_AREA_PX)
            for m, full in zip(masks, full_areas, strict=True)
        ):
            return mask
    return None


def render_image(
    rng: np.random.Generator, image_size: int
) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """
    Draw one image with 1-6 partially occluded instances.

    Args:
        rng: random generator; the image is a deterministic function of its state.
        image_size: side S of the square image in pixels.

    Returns:
        image: ``(S, S, 3)`` uint8 RGB.
        masks: one ``(S, S)`` boolean visible mask per instance, pairwise disjoint, in drawing order.
        labels: 0-based class index (into ``SYNTHETIC_CLASSES``) of each instance.
    """
    image = _background(rng, image_size)
    masks: list[np.ndarray] = []
    full_areas: list[int] = []
    labels: list[int] = []
    hues = list(COLOUR_HUES.values())
    for _ in range(int(rng.integers(1, MAX_INSTANCES + 1))):
        label = int(rng.integers(len(SYNTHETIC_CLASSES)))
        mask = _place(rng, SHAPES[label // len(hues)], image_size, masks, full_areas)
        if mask is None:
            continue
        masks = [m & ~mask for m in masks]
        masks.append(mask)
        full_areas.append(int(mask.sum()))
        labels.append(label)
        colour = _hsv_to_rgb255(
            hues[label % len(hues)] + rng.uniform(-HUE_JITTER_DEG, HUE_JITTER_DEG),
            rng.uniform(*SATURATION_RANGE),
            rng.uniform(*VALUE_RANGE),
        )
        _paint(image, mask, colour, rng)
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(2, 6)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), masks, labels


def _params(num_train: int, num_val: int, image_size: int, seed: int) -> dict:
    """The parameters that identify a cache, validated."""
    if num_train < 0 or num_val < 0 or seed < 0 or image_size < 32:
        raise ValueError(
            f"Invalid synthetic dataset parameters: num_train={num_train}, num_val={num_val}, "
            f"image_size={image_size}, seed={seed}; counts and seed must be >= 0, image_size >= 32"
        )
    return {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": int(image_size),
        "seed": int(seed),
    }


def _build_split(root: str, split: str, num_images: int, params: dict) -> dict:
    """Draw and save the images of one split; return its COCO dict."""
    image_size = params["image_size"]
    split_dir = os.path.join(root, split)
    shutil.rmtree(split_dir, ignore_errors=True)
    os.makedirs(split_dir)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([params["seed"], SPLIT_IDS[split], index])
        image, masks, labels = render_image(rng, image_size)
        image_id = index + 1
        file_name = f"{image_id:06d}.png"
        if not cv2.imwrite(os.path.join(split_dir, file_name), image[..., ::-1]):
            raise OSError(f"Could not write {os.path.join(split_dir, file_name)}")
        images.append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for mask, label in zip(masks, labels, strict=True):
            rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                    "area": int(mask.sum()),
                    "bbox": [float(v) for v in mask_util.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": f"ykd synthetic shapes, {split} split", **params},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(SYNTHETIC_CLASSES)],
    }


def _generate(root: str, params: dict) -> None:
    """Write the whole dataset; ``params.json`` goes last, after both COCO files."""
    start = time.perf_counter()
    os.makedirs(root, exist_ok=True)
    marker = os.path.join(root, "params.json")
    if os.path.exists(marker):
        os.remove(marker)
    for split in CACHE_SPLITS:
        coco = _build_split(root, split, params[f"num_{split}"], params)
        write_json_atomic(os.path.join(root, f"{split}.json"), coco, indent=None)
    write_json_atomic(marker, params, indent=None)
    logger.info("Synthetic dataset written to %s in %.1fs", root, time.perf_counter() - start)


def _is_finished(
    root: str, params: dict, marker: str = "params.json", splits: tuple = CACHE_SPLITS
) -> bool:
    """Whether ``root`` holds the finished ``splits`` made with ``params`` (their ``marker``)."""
    try:
        with open(os.path.join(root, marker)) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    return stored == params and all(
        os.path.isfile(os.path.join(root, f"{split}.json")) for split in splits
    )


@contextmanager
def _locked(root: str):
    """Hold an exclusive ``fcntl`` lock on ``<root>/.lock`` (blocks while another process holds it)."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def generate_synthetic(
    root: str, num_train: int = 2000, num_val: int = 300, image_size: int = 128, seed: int = 0
) -> None:
    """
    Generate the dataset into ``root``, replacing the ``train``/``val`` folders and json files there.

    Args:
        root: cache folder; created if missing.
        num_train, num_val: number of images of each split.
        image_size: side of the square images in pixels (>= 32).
        seed: base seed (>= 0); image ``i`` of a split is drawn from ``(seed, split, i)``.
    """
    params = _params(num_train, num_val, image_size, seed)
    with _locked(root):
        _generate(root, params)


def ensure_synthetic(
    root: str, num_train: int = 2000, num_val: int = 300, image_size: int = 128, seed: int = 0
) -> None:
    """
    Make sure ``root`` holds a finished dataset with these parameters, generating it if not.

    Does nothing when ``<root>/params.json`` matches; safe to call from several processes at once
    (the first generates under a file lock, the others wait and then find the finished cache).
    Arguments are those of :func:`generate_synthetic`.
    """
    params = _params(num_train, num_val, image_size, seed)
    with _locked(root):
        if not _is_finished(root, params):
            _generate(root, params)


def ensure_synthetic_dev(
    root: str, num_dev: int = 300, image_size: int = 128, seed: int = 0
) -> None:
    """
    Make sure ``root`` holds the development split (``dev.json``, ``dev/``) of ``num_dev`` images
    drawn from ``(seed, "dev", index)``, generating it if its marker ``dev_params.json`` does not
    match. The main cache (``train``, ``val``, ``params.json``) is left as it is; safe to call from
    several processes at once, like :func:`ensure_synthetic`.
    """
    params = {
        key: value
        for key, value in _params(0, num_dev, image_size, seed).items()
        if key not in ("num_train", "num_val")
    }
    params["num_dev"] = int(num_dev)
    marker = os.path.join(root, "dev_params.json")
    with _locked(root):
        if _is_finished(root, params, marker="dev_params.json", splits=("dev",)):
            return
        if os.path.exists(marker):
            os.remove(marker)
        coco = _build_split(root, "dev", num_dev, params)
        write_json_atomic(os.path.join(root, "dev.json"), coco, indent=None)
        write_json_atomic(marker, params, indent=None)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: generate the dataset into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", required=True, help="cache folder to write")
    parser.add_argument("--num-train", type=int, default=2000, help="number of training images")
    parser.add_argument("--num-val", type=int, default=300, help="number of validation images")
    parser.add_argument("--image-size", type=int, default=128, help="side of the images in px")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    generate_synthetic(args.out, args.num_train, args.num_val, args.image_size, args.seed)
    print(
        f"Wrote {args.num_train} train and {args.num_val} val images to {args.out} "
        f"in {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    main()
