"""
Pictures of predictions: a PNG grid of a model's masks, boxes, class names and scores on a fixed
set of test images, old-class instances in one colour and new-class instances in another, drawn
with Detectron2's :class:`Visualizer`, for the ``predictions.png`` of each step.
"""

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from detectron2.evaluation import inference_context
from detectron2.structures import Instances
from detectron2.utils.visualizer import Visualizer
from PIL import Image, ImageDraw

from ..utils import atomic_write, unwrap

# Colours (RGB in [0, 1]) of the instances of old classes (tasks before the step) and of new ones.
OLD_COLOR = (0.12, 0.47, 0.71)  # blue
NEW_COLOR = (1.0, 0.5, 0.05)  # orange
CELL_SIZE = 256  # side of a grid cell: an image is scaled so that its longer side fills it
CAPTION_HEIGHT = 16  # strip under each image with its file name
HEADER_HEIGHT = 20  # strip above the grid with the title and the colour legend
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def old_classes_of(metadata) -> set[int]:
    """The class ids of the tasks before the step of a step dataset's metadata (``ykd_tasks``,
    ``ykd_step``); empty for other datasets."""
    tasks = metadata.get("ykd_tasks", None) or []
    step = metadata.get("ykd_step", len(tasks) - 1)
    return {c for task in tasks[:step] for c in task}


def fixed_test_images(dataset_name: str, num: int) -> list[dict]:
    """
    A deterministic choice of ``num`` records of a registered dataset: in image-id order, first
    the images that hold both old- and new-class instances (step datasets: see
    :func:`old_classes_of`), then those with new classes only, then the others. The same dataset
    always gives the same images, so the pictures of two runs of a step compare.
    """
    if num <= 0:
        return []
    records = sorted(
        DatasetCatalog.get(dataset_name), key=lambda r: (r["image_id"], r["file_name"])
    )
    old = old_classes_of(MetadataCatalog.get(dataset_name))

    def rank(record):
        classes = {a["category_id"] for a in record.get("annotations", [])}
        has_new, has_old = bool(classes - old), bool(classes & old)
        return 0 if has_new and has_old else 1 if has_new else 2

    return sorted(records, key=rank)[:num]  # a stable sort keeps the image-id order


class ImagePredictor:
    """
    The predictions of a model on one BGR image, pre-processed as :class:`DefaultPredictor` does
    (``INPUT.FORMAT``, test-time ``ResizeShortestEdge``), for a model that is already built and
    loaded (e.g. a trainer's, or one loaded with ``YKDCheckpointer``).
    """

    def __init__(self, cfg, model):
        self.model = unwrap(model)
        self.input_format = cfg.INPUT.FORMAT
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )

    def __call__(self, image_bgr: np.ndarray) -> Instances:
        """
        Args:
            image_bgr: (H, W, 3) uint8, BGR as ``read_image(path, "BGR")`` gives.
        Returns:
            the model's ``Instances`` in the image's coordinates, on the CPU.
        """
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)).astype("float32"))
        with inference_context(self.model), torch.no_grad():
            outputs = self.model([{"image": tensor, "height": height, "width": width}])
        return outputs[0]["instances"].to("cpu")


def draw_predictions(
    image_rgb: np.ndarray,
    instances: Instances,
    class_names: Sequence[str],
    old_classes: set[int],
    *,
    score_thresh: float = 0.5,
    cell_size: int = CELL_SIZE,
    old_color=OLD_COLOR,
    new_color=NEW_COLOR,
) -> np.ndarray:
    """
    Draw the instances scoring at least ``score_thresh`` (masks, boxes, "name score" labels) on an
    image scaled so that its longer side is ``cell_size``; old-class instances in ``old_color``,
    the others in ``new_color``.

    Args:
        image_rgb: (H, W, 3) uint8, RGB.
        instances: with ``pred_boxes``, ``pred_classes``, ``scores`` and optionally ``pred_masks``
            ((N, H, W) bool), in the image's coordinates.
    Returns:
        (h, w, 3) uint8 RGB, max(h, w) = ``cell_size``.
    """
    height, width = image_rgb.shape[:2]
    scale = cell_size / max(height, width)
    # Visualizer's font grows with the image, not with ``scale``: keep labels legible in a cell.
    base_font = max(math.sqrt(height * width) // 90, 10 // scale) or 1.0
    font_scale = max(1.0, cell_size / 20 / (scale * base_font))
    visualizer = Visualizer(image_rgb, scale=scale, font_size_scale=font_scale)
    kept = instances[instances.scores >= score_thresh]
    classes = kept.pred_classes.tolist()
    labels = [
        f"{class_names[c]} {s:.0%}" for c, s in zip(classes, kept.scores.tolist(), strict=True)
    ]
    colors = [old_color if c in old_classes else new_color for c in classes]
    masks = kept.pred_masks.numpy() if kept.has("pred_masks") and len(kept) else None
    visualizer.overlay_instances(
        boxes=kept.pred_boxes.tensor.numpy(), labels=labels, masks=masks, assigned_colors=colors
    )
    return visualizer.get_output().get_image()


def _text(draw: ImageDraw.ImageDraw, xy, text: str, fill, width: int) -> int:
    """Draw ``text`` at ``xy``, cut to fit ``width`` pixels; return the x after it."""
    while text and draw.textlength(text) > width:
        text = text[:-1]
    draw.text(xy, text, fill=fill)
    return xy[0] + int(draw.textlength(text))


def tile_images(
    images: Sequence[np.ndarray],
    *,
    columns: int,
    captions: Sequence[str] = (),
    title: str = "",
    cell_size: int = CELL_SIZE,
    old_color=OLD_COLOR,
    new_color=NEW_COLOR,
) -> Image.Image:
    """
    Tile RGB images (each at most ``cell_size`` a side) into a grid of ``columns`` columns under a
    header holding ``title`` and the colour legend; each image gets a caption strip.

    Returns:
        an RGB image of ``columns * cell_size`` by
        ``HEADER_HEIGHT + rows * (cell_size + CAPTION_HEIGHT)`` pixels, rows = ceil(N / columns).
    """
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    row_height = cell_size + CAPTION_HEIGHT
    grid = Image.new("RGB", (columns * cell_size, HEADER_HEIGHT + rows * row_height), _BACKGROUND)
    draw = ImageDraw.Draw(grid)
    x = _text(draw, (4, 4), f"{title}   " if title else "", _TEXT, grid.width)
    for name, color in (("old classes", old_color), ("new classes", new_color)):
        rgb = tuple(round(255 * v) for v in color)
        draw.rectangle((x, 6, x + 10, 14), fill=rgb)
        x = _text(draw, (x + 14, 4), f"{name}   ", _TEXT, max(grid.width - x - 14, 0))
    for i, image in enumerate(images):
        left = (i % columns) * cell_size
        top = HEADER_HEIGHT + (i // columns) * row_height
        grid.paste(
            Image.fromarray(np.ascontiguousarray(image[:cell_size, :cell_size])), (left, top)
        )
        if i < len(captions):
            _text(draw, (left + 2, top + cell_size + 2), captions[i], _TEXT, cell_size - 4)
    return grid


def save_png(image: Image.Image, path: str) -> None:
    """Write ``image`` to ``path`` as PNG, atomically."""
    atomic_write(path, lambda f: image.save(f, format="PNG"), binary=True)


def prediction_grid(
    predictor,
    images: Sequence[np.ndarray | dict | str],
    class_names: Sequence[str],
    old_classes: set[int],
    *,
    columns: int = 4,
    score_thresh: float = 0.5,
    title: str = "",
    captions: Sequence[str] | None = None,
) -> Image.Image:
    """
    The grid of a predictor's predictions on ``images``.

    Args:
        predictor: image (H, W, 3) BGR uint8 -> ``Instances``, e.g. an :class:`ImagePredictor`.
        images: BGR uint8 arrays, dataset records (their ``file_name`` is read) or image paths.
        class_names: the model's class names (index = predicted class id).
        old_classes: ids drawn in the old-class colour.
        captions: one per image; default the file name (or "image <i>" for an array) and the
            numbers of old- and new-class instances drawn.
    """
    drawn, names = [], []
    for i, image in enumerate(images):
        path = image["file_name"] if isinstance(image, dict) else image
        bgr = read_image(path, format="BGR") if isinstance(path, str) else image
        instances = predictor(bgr)
        drawn.append(
            draw_predictions(
                bgr[:, :, ::-1], instances, class_names, old_classes, score_thresh=score_thresh
            )
        )
        kept = instances.pred_classes[instances.scores >= score_thresh].tolist()
        num_old = sum(c in old_classes for c in kept)
        name = os.path.basename(path) if isinstance(path, str) else f"image {i}"
        names.append(f"{name}: {num_old} old, {len(kept) - num_old} new")
    return tile_images(drawn, columns=columns, captions=captions or names, title=title)


def write_prediction_grid(
    cfg,
    model,
    path: str | None = None,
    *,
    images=None,
    score_thresh: float = 0.5,
    columns: int = 4,
) -> str | None:
    """
    Draw ``model``'s predictions on the ``CONTINUAL.VIS_NUM_IMAGES`` images of
    :func:`fixed_test_images` of ``DATASETS.TEST[0]`` (or on ``images``) into a PNG grid.

    Args:
        path: default ``<OUTPUT_DIR>/predictions.png``.
        images: as for :func:`prediction_grid`; default the fixed test images.
    Returns:
        the path written, or None when ``VIS_NUM_IMAGES`` is 0 and no ``images`` are given.
    """
    dataset = cfg.DATASETS.TEST[0]
    if images is None:
        images = fixed_test_images(dataset, cfg.CONTINUAL.VIS_NUM_IMAGES)
    if not len(images):
        return None
    metadata = MetadataCatalog.get(dataset)
    title = f"{cfg.CONTINUAL.DATASET} {cfg.CONTINUAL.SCENARIO} {cfg.CONTINUAL.METHOD}"
    title += f" step {cfg.CONTINUAL.STEP}, score >= {score_thresh:g}"
    grid = prediction_grid(
        ImagePredictor(cfg, model),
        images,
        metadata.thing_classes,
        old_classes_of(metadata),
        columns=columns,
        score_thresh=score_thresh,
        title=title,
    )
    path = path or os.path.join(cfg.OUTPUT_DIR, "predictions.png")
    save_png(grid, path)
    return path
