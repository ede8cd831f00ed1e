"""Tests of the embedded synthetic shapes dataset (ykd/data/synthetic.py)."""

import json
import os
import subprocess
import sys
import threading
from collections import Counter

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from ykd.data import synthetic
from ykd.data.synthetic import SYNTHETIC_CLASSES, ensure_synthetic, generate_synthetic, main

SMALL = {"num_train": 30, "num_val": 10, "image_size": 96, "seed": 0}


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _load(root, split):
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic") / "small")
    generate_synthetic(root, **SMALL)
    return root


def test_class_list():
    assert len(SYNTHETIC_CLASSES) == 20
    assert len(set(SYNTHETIC_CLASSES)) == 20
    assert SYNTHETIC_CLASSES[0] == "red_circle"


def test_layout_and_categories(small_root):
    for split, count in (("train", SMALL["num_train"]), ("val", SMALL["num_val"])):
        coco = _load(small_root, split)
        assert coco["categories"] == [
            {"id": i + 1, "name": name} for i, name in enumerate(SYNTHETIC_CLASSES)
        ]
        assert len(coco["images"]) == count
        assert len({im["id"] for im in coco["images"]}) == count
        for im in coco["images"]:
            path = os.path.join(small_root, split, im["file_name"])
            with Image.open(path) as image:
                assert image.size == (im["width"], im["height"]) == (96, 96)
                assert image.mode == "RGB"
    with open(os.path.join(small_root, "params.json")) as f:
        assert json.load(f) == synthetic._params(**SMALL)


def test_annotations_match_their_masks(small_root):
    for split in ("train", "val"):
        coco = _load(small_root, split)
        sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
        masks_per_image = {}
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
        for ann in coco["annotations"]:
            assert ann["iscrowd"] == 0
            assert 1 <= ann["category_id"] <= 20
            assert isinstance(ann["segmentation"]["counts"], str)
            mask = mask_util.decode(ann["segmentation"])
            assert mask.shape == sizes[ann["image_id"]]
            assert int(mask.sum()) == ann["area"] >= synthetic.MIN_AREA_PX
            ys, xs = np.nonzero(mask)
            x0, y0 = xs.min(), ys.min()
            tight = [x0, y0, xs.max() - x0 + 1, ys.max() - y0 + 1]
            assert ann["bbox"] == pytest.approx(tight)
            masks_per_image.setdefault(ann["image_id"], []).append(mask)
        assert set(masks_per_image) == set(sizes)
        for masks in masks_per_image.values():
            assert 1 <= len(masks) <= synthetic.MAX_INSTANCES
            coverage = np.sum(masks, axis=0)
            assert coverage.max() == 1, "visible masks of one image must not overlap"


def test_same_seed_is_byte_identical_and_seeds_differ(small_root, tmp_path):
    again = str(tmp_path / "again")
    generate_synthetic(again, **SMALL)
    for name in ("train.json", "val.json", "train/000001.png", "val/000010.png"):
        assert _read(os.path.join(small_root, name)) == _read(os.path.join(again, name))
    other = str(tmp_path / "other")
    generate_synthetic(other, **{**SMALL, "seed": 1})
    for name in ("train.json", "val.json", "train/000001.png"):
        assert _read(os.path.join(small_root, name)) != _read(os.path.join(other, name))


def test_images_do_not_depend_on_split_size(small_root, tmp_path):
    fewer = str(tmp_path / "fewer")
    generate_synthetic(fewer, **{**SMALL, "num_train": 5, "num_val": 2})
    coco, full = _load(fewer, "train"), _load(small_root, "train")
    assert coco["annotations"] == full["annotations"][: len(coco["annotations"])]
    assert _read(os.path.join(fewer, "val/000002.png")) == _read(
        os.path.join(small_root, "val/000002.png")
    )


def test_classes_are_balanced(tmp_path):
    root = str(tmp_path / "balance")
    generate_synthetic(root, num_train=300, num_val=0, image_size=64, seed=3)
    counts = Counter(a["category_id"] for a in _load(root, "train")["annotations"])
    assert set(counts) == set(range(1, 21))
    mean = sum(counts.values()) / 20
    assert all(0.5 * mean <= c <= 1.5 * mean for c in counts.values()), counts
    per_image = Counter(a["image_id"] for a in _load(root, "train")["annotations"])
    assert len(per_image) == 300
    assert set(per_image.values()) == set(range(1, 7))


def test_render_image_sizes_scale_with_image_size():
    for image_size in (64, 128):
        for index in range(10):
            rng = np.random.default_rng([0, 0, index])
            image, masks, labels = synthetic.render_image(rng, image_size)
            assert image.shape == (image_size, image_size, 3) and image.dtype == np.uint8
            assert len(masks) == len(labels)
            for mask in masks:
                ys, xs = np.nonzero(mask)
                extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
                assert extent <= 1.1 * synthetic.SIZE_RANGE[1] * image_size + 2


def test_ensure_reuses_a_finished_cache_and_regenerates_on_change(tmp_path):
    root = str(tmp_path / "cache")
    params = {"num_train": 4, "num_val": 2, "image_size": 64, "seed": 0}
    ensure_synthetic(root, **params)
    files = [os.path.join(root, n) for n in ("train.json", "val.json", "params.json")]
    stamps = [os.stat(f).st_mtime_ns for f in files]
    ensure_synthetic(root, **params)
    assert [os.stat(f).st_mtime_ns for f in files] == stamps

    ensure_synthetic(root, **{**params, "num_train": 6})
    assert len(_load(root, "train")["images"]) == 6
    assert len(os.listdir(os.path.join(root, "train"))) == 6

    os.remove(os.path.join(root, "params.json"))  # as if a run had been interrupted
    ensure_synthetic(root, **{**params, "num_train": 6})
    assert os.path.isfile(os.path.join(root, "params.json"))


def test_ensure_is_safe_under_concurrent_calls(tmp_path, monkeypatch):
    calls = []
    generate = synthetic._generate

    def counting_generate(root, params):
        calls.append(root)
        generate(root, params)

    monkeypatch.setattr(synthetic, "_generate", counting_generate)
    root = str(tmp_path / "concurrent")
    threads = [
        threading.Thread(target=ensure_synthetic, args=(root, 6, 2, 64, 0)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [root]
    assert len(_load(root, "train")["images"]) == 6


def test_invalid_parameters_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        generate_synthetic(str(tmp_path / "bad"), num_train=1, num_val=1, image_size=16)


def test_loads_through_detectron2(small_root):
    from detectron2.data.datasets import load_coco_json

    dicts = load_coco_json(
        os.path.join(small_root, "val.json"), os.path.join(small_root, "val"), dataset_name=None
    )
    assert len(dicts) == SMALL["num_val"]
    for record in dicts:
        assert os.path.isfile(record["file_name"])
        assert 1 <= len(record["annotations"]) <= synthetic.MAX_INSTANCES
        for ann in record["annotations"]:
            assert ann["segmentation"]["size"] == [record["height"], record["width"]]


def test_cli_main(tmp_path, capsys):
    out = str(tmp_path / "cli")
    main(["--out", out, "--num-train", "3", "--num-val", "2", "--image-size", "64", "--seed", "5"])
    assert "Wrote 3 train and 2 val images" in capsys.readouterr().out
    with open(os.path.join(out, "params.json")) as f:
        assert json.load(f)["seed"] == 5
    assert len(_load(out, "val")["images"]) == 2


def test_cli_module_entry_point(tmp_path):
    out = str(tmp_path / "module")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    args = ["--out", out, "--num-train", "2", "--num-val", "1", "--image-size", "48"]
    subprocess.run([sys.executable, "-m", "ykd.data.synthetic", *args], check=True, env=env)
    assert len(_load(out, "train")["images"]) == 2


def test_the_dev_split_is_drawn_apart_and_leaves_the_main_cache(tmp_path):
    root = str(tmp_path / "cache")
    params = {"num_train": 4, "num_val": 3, "image_size": 64, "seed": 0}
    ensure_synthetic(root, **params)
    main_files = [os.path.join(root, n) for n in ("train.json", "val.json", "params.json")]
    stamps = [os.stat(f).st_mtime_ns for f in main_files]
    synthetic.ensure_synthetic_dev(root, num_dev=3, image_size=64, seed=0)
    assert [os.stat(f).st_mtime_ns for f in main_files] == stamps
    dev = _load(root, "dev")
    assert len(dev["images"]) == 3 and len(os.listdir(os.path.join(root, "dev"))) == 3
    # Image i of dev is not image i of val (its own generator stream), and is reproducible.
    dev_bytes = [_read(os.path.join(root, "dev", im["file_name"])) for im in dev["images"]]
    val_images = _load(root, "val")["images"]
    val_bytes = [_read(os.path.join(root, "val", im["file_name"])) for im in val_images]
    assert not set(dev_bytes) & set(val_bytes)
    again = str(tmp_path / "again")
    synthetic.ensure_synthetic_dev(again, num_dev=3, image_size=64, seed=0)
    assert _read(os.path.join(again, "dev.json")) == _read(os.path.join(root, "dev.json"))
    assert not os.path.exists(os.path.join(again, "train.json"))
    # A finished dev split is reused; other parameters regenerate it.
    dev_stamp = os.stat(os.path.join(root, "dev.json")).st_mtime_ns
    synthetic.ensure_synthetic_dev(root, num_dev=3, image_size=64, seed=0)
    assert os.stat(os.path.join(root, "dev.json")).st_mtime_ns == dev_stamp
    synthetic.ensure_synthetic_dev(root, num_dev=5, image_size=64, seed=0)
    assert len(_load(root, "dev")["images"]) == 5
    assert [os.stat(f).st_mtime_ns for f in main_files] == stamps
