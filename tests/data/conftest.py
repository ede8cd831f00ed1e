"""
Fixtures of the data-layer tests: a writer of tiny COCO-format splits (16×16 PNGs, polygon or RLE
masks), a monkeypatched ``$DETECTRON2_DATASETS`` in ``tmp_path``, the cache folder of a small
synthetic dataset, configs, and a guard that removes every catalog entry a test registers.
"""

import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ykd.engine import get_ykd_cfg

IMAGE_SIZE = 16


def box_of(image_id: int, index: int) -> list[float]:
    """A distinct small box per annotation, inside a 16×16 image."""
    x, y = (image_id + 3 * index) % 8, (2 * image_id + index) % 8
    return [float(x), float(y), 6.0, 5.0]


def write_png(path, size: int = IMAGE_SIZE, value: int = 0) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def write_coco_json(
    path, images: dict, categories: list[dict], *, file_names: dict, segmentation: str
) -> None:
    """
    A COCO instances file: ``images`` maps image id -> class names of its instances,
    ``categories`` are ``{"id", "name"}`` dicts, ``file_names`` maps image id -> file name.
    ``segmentation`` is "polygon" or "rle" (uncompressed-string RLE, as COCO stores it).
    """
    ids = {c["name"]: c["id"] for c in categories}
    coco = {"images": [], "annotations": [], "categories": categories}
    for image_id, names in images.items():
        coco["images"].append(
            {
                "id": image_id,
                "file_name": file_names[image_id],
                "height": IMAGE_SIZE,
                "width": IMAGE_SIZE,
            }
        )
        for index, name in enumerate(names):
            x, y, w, h = box_of(image_id, index)
            if segmentation == "polygon":
                segm = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            else:
                mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8, order="F")
                mask[int(y) : int(y + h), int(x) : int(x + w)] = 1
                segm = mask_util.encode(np.asfortranarray(mask))
                segm["counts"] = segm["counts"].decode("ascii")
            coco["annotations"].append(
                {
                    "id": 1000 * image_id + index,
                    "image_id": image_id,
                    "category_id": ids[name],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": segm,
                }
            )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(coco, f)


def write_split(
    json_file,
    image_root,
    images: dict,
    categories: dict,
    *,
    subdir="",
    segmentation="polygon",
    images_on_disk=True,
) -> dict:
    """
    Write one COCO-format split: ``images`` maps image id -> class names of its instances,
    ``categories`` maps class name -> category id. Image ``i`` is a 16×16 PNG
    ``<image_root>/<subdir><i:06d>.png`` (not written when ``images_on_disk`` is false).

    Returns:
        image id -> file name as written in the json (relative to ``image_root``).
    """
    file_names = {i: f"{subdir}{i:06d}.png" for i in images}
    if images_on_disk:
        for name in file_names.values():
            write_png(os.path.join(image_root, name))
    write_coco_json(
        json_file,
        images,
        [{"id": i, "name": n} for n, i in categories.items()],
        file_names=file_names,
        segmentation=segmentation,
    )
    return file_names


@pytest.fixture
def clean_catalogs():
    """Remove every DatasetCatalog/MetadataCatalog entry that the test added (they are global)."""
    datasets, metadata = set(DatasetCatalog.list()), set(MetadataCatalog.list())
    yield
    for name in set(DatasetCatalog.list()) - datasets:
        DatasetCatalog.remove(name)
    for name in set(MetadataCatalog.list()) - metadata:
        MetadataCatalog.remove(name)


@pytest.fixture
def datasets_root(tmp_path, monkeypatch):
    """An empty ``$DETECTRON2_DATASETS`` in ``tmp_path``."""
    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    return root


SYNTHETIC_PARAMS = {"NUM_TRAIN": 30, "NUM_VAL": 10, "IMAGE_SIZE": 64, "SEED": 0}


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Cache folder of the synthetic dataset (generated on the first load through the catalog)."""
    return str(tmp_path_factory.mktemp("synthetic") / "cache")


def make_cfg(dataset: str = "synthetic", synthetic_root: str = "", **continual):
    """``get_ykd_cfg()`` with ``CONTINUAL.DATASET`` and the given ``CONTINUAL.*`` keys."""
    cfg = get_ykd_cfg()
    cfg.CONTINUAL.DATASET = dataset
    for key, value in continual.items():
        setattr(cfg.CONTINUAL, key.upper(), value)
    cfg.SYNTHETIC.ROOT = synthetic_root
    for key, value in SYNTHETIC_PARAMS.items():
        setattr(cfg.SYNTHETIC, key, value)
    return cfg


@pytest.fixture
def cfg_factory():
    """``cfg_factory(dataset, synthetic_root="", **continual_keys)`` -> a config."""
    return make_cfg


@pytest.fixture
def split_writer():
    """``split_writer(json_file, image_root, images, categories, ...)``: see :func:`write_split`."""
    return write_split
