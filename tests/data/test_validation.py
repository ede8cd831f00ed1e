"""
Tests of the up-front validation of COCO-format files (ykd/data/validation/): schema errors name
file, record and field; degenerate annotations are dropped, counted and logged; image files are
checked; the synthetic generator's output validates clean; and the loader applies all of it.
"""

import json
import logging
import os
import tempfile

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import detection_utils as utils
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ykd.data import validation
from ykd.data.datasets import DatasetSource, SplitFiles, build_source, load_source_split
from ykd.data.synthetic import generate_synthetic
from ykd.data.validation import (
    NO_POLYGON,
    OUTSIDE,
    ZERO_AREA,
    DatasetValidationError,
    image_files,
    validate_coco_json,
)

CATEGORIES = {"dog": 1, "cat": 2}
# Annotation ids are 1000 * image id + index: 1000, 1001 (image 1), 2000 (image 2), 3000 (image 3).
IMAGES = {1: ["dog", "cat"], 2: ["cat"], 3: ["dog"]}


@pytest.fixture
def split(tmp_path, split_writer):
    """A valid polygon split of 16×16 PNGs: ``(json_file, image_root)``."""
    json_file, image_root = str(tmp_path / "instances.json"), str(tmp_path / "images")
    split_writer(json_file, image_root, IMAGES, CATEGORIES)
    return json_file, image_root


@pytest.fixture
def rle_split(tmp_path, split_writer):
    json_file, image_root = str(tmp_path / "instances.json"), str(tmp_path / "images")
    split_writer(json_file, image_root, IMAGES, CATEGORIES, segmentation="rle")
    return json_file, image_root


def capture_log(caplog, monkeypatch) -> None:
    """Let ``caplog`` (call phase) see the validation logger's INFO records, whatever pytest's
    ``log_level`` option, and although ``setup_logger(name="ykd")`` stops propagation."""
    monkeypatch.setattr(logging.getLogger("ykd"), "propagate", True)
    caplog.set_level(logging.INFO, logger=validation.__name__)


def edit(json_file, change) -> None:
    """Rewrite a COCO file with ``change(coco)`` applied."""
    with open(json_file) as f:
        coco = json.load(f)
    change(coco)
    with open(json_file, "w") as f:
        json.dump(coco, f)


def ann(coco, annotation_id) -> dict:
    return next(a for a in coco["annotations"] if a["id"] == annotation_id)


def write_image(path, width: int, height: int) -> None:
    Image.new("RGB", (width, height)).save(path)


def test_valid_split_passes_with_nothing_dropped(split, caplog, monkeypatch):
    capture_log(caplog, monkeypatch)
    report = validate_coco_json(*split)
    assert (report.num_images, report.num_annotations, report.image_check) == (3, 4, "sizes")
    assert report.dropped == {} and report.num_dropped == 0
    assert report.polygons_removed == report.boxes_partly_outside == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(
        "Validated" in r.getMessage() and "4 annotations" in r.getMessage() for r in caplog.records
    )


def test_valid_rle_split_passes_with_string_and_list_counts(rle_split):
    # Uncompressed RLE (list counts) as COCO's crowd annotations have it: 30 ones in 16×16.
    edit(rle_split[0], lambda c: ann(c, 2000)["segmentation"].update(counts=[16, 30, 210]))
    assert validate_coco_json(*rle_split).num_dropped == 0


def test_synthetic_cache_validates_clean(cfg_factory, synthetic_root):
    source = build_source(cfg_factory("synthetic", synthetic_root))  # 30 + 10 images of 64 px
    source.prepare()
    for files in (source.train, source.test):
        report = validate_coco_json(files.json_file, files.image_root)
        assert report.num_annotations > 0 and report.image_check == "sizes"
        assert report.dropped == {} and report.polygons_removed == report.boxes_partly_outside == 0


def _mix_id_types(coco):
    coco["images"].append({"id": "x", "file_name": "000001.png", "width": 16, "height": 16})


SCHEMA_ERRORS = {
    "bbox_of_2_numbers": (
        lambda c: ann(c, 1001).update(bbox=[1, 2]),
        ["annotation id 1001 (image 1): 'bbox' must be 4 numbers", "got [1, 2]"],
    ),
    "bbox_string": (lambda c: ann(c, 1001).update(bbox=[1, 2, "3", 4]), ["1001", "'bbox'"]),
    "bbox_bool": (lambda c: ann(c, 1001).update(bbox=[1, 2, True, 4]), ["1001", "'bbox'"]),
    "bbox_nan": (lambda c: ann(c, 1001).update(bbox=[1, 2, float("nan"), 4]), ["'bbox'"]),
    "bbox_negative": (lambda c: ann(c, 1001).update(bbox=[4, 3, -6, 5]), ["negative width"]),
    "image_without_width": (
        lambda c: c["images"][1].pop("width"),
        ["images[1] (id 2): missing required key 'width'"],
    ),
    "image_width_string": (
        lambda c: c["images"][1].update(width="16"),
        ["image id 2: 'width' must be a positive integer, got '16'"],
    ),
    "image_id_float": (lambda c: c["images"][0].update(id=1.5), ["images[0]: 'id' must be"]),
    "annotation_without_bbox": (
        lambda c: ann(c, 2000).pop("bbox"),
        ["annotations[2] (id 2000): missing required key 'bbox'"],
    ),
    "category_without_name": (
        lambda c: c["categories"][0].pop("name"),
        ["categories[0] (id 1): missing required key 'name'"],
    ),
    "unknown_category": (
        lambda c: ann(c, 3000).update(category_id=7),
        ["annotation id 3000 (image 3): 'category_id' 7 is not among the category ids [1, 2]"],
    ),
    "unknown_image": (
        lambda c: ann(c, 3000).update(image_id=9),
        ["annotation id 3000: 'image_id' 9 is not the id of an image"],
    ),
    "duplicate_image_id": (lambda c: c["images"][2].update(id=2), ["image id 2", "another image"]),
    "duplicate_annotation_id": (
        lambda c: ann(c, 2000).update(id=1000),
        ["annotation id 1000", "another annotation"],
    ),
    "duplicate_category_id": (lambda c: c["categories"][1].update(id=1), ["category id 1"]),
    "duplicate_category_name": (
        lambda c: c["categories"][1].update(name="dog"),
        ["category id 2: 'name' 'dog' is the name of another category"],
    ),
    "polygon_odd_length": (
        lambda c: ann(c, 1000)["segmentation"][0].append(3.0),
        ["annotation id 1000 (image 1): 'segmentation' polygon 0 has an odd number"],
    ),
    "polygon_strings": (
        lambda c: ann(c, 1000).update(segmentation=[["1", "2", "3", "4", "5", "6"]]),
        ["annotation id 1000", "polygon 0 must be numbers"],
    ),
    "segmentation_string": (
        lambda c: ann(c, 1000).update(segmentation="mask"),
        ["annotation id 1000", "'segmentation' must be polygons or an RLE"],
    ),
    "some_without_segmentation": (
        lambda c: ann(c, 2000).pop("segmentation"),
        ["annotation id 2000 (image 2): no 'segmentation', while 3 other annotations have one"],
    ),
    "iscrowd_2": (lambda c: ann(c, 2000).update(iscrowd=2), ["2000", "'iscrowd' must be 0 or 1"]),
    "ignore": (lambda c: ann(c, 2000).update(ignore=1), ["2000", "'ignore'"]),
    "mixed_image_id_types": (_mix_id_types, ["image ids mix integers and strings"]),
    "no_annotations_list": (lambda c: c.pop("annotations"), ["'annotations' is missing"]),
    "no_categories": (lambda c: c.update(categories=[]), ["'categories' is empty"]),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_ERRORS))
def test_schema_error_names_file_record_and_field(split, case):
    change, fragments = SCHEMA_ERRORS[case]
    edit(split[0], change)
    with pytest.raises(DatasetValidationError) as info:
        validate_coco_json(*split)
    message = str(info.value)
    assert message.startswith(f"{split[0]}: ") and "\n" not in message
    assert message.endswith(("fix or remove the record.", "fix the file."))
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (
            lambda c: ann(c, 1000)["segmentation"].update(size=[8, 16]),
            "annotation id 1000 (image 1): RLE 'size' [8, 16] differs from the image's"
            " [height, width] [16, 16]",
        ),
        (
            lambda c: ann(c, 1000)["segmentation"].update(counts=[10, 20]),
            "RLE 'counts' add up to 30 pixels, not 256",
        ),
    ],
    ids=["size", "counts"],
)
def test_rle_of_the_wrong_size_is_an_error(rle_split, change, fragment):
    edit(rle_split[0], change)
    with pytest.raises(DatasetValidationError, match="fix or remove the record") as info:
        validate_coco_json(*rle_split)
    assert fragment in str(info.value)


def test_not_json_is_an_error(split):
    with open(split[0], "w") as f:
        f.write('{"images": [')
    with pytest.raises(DatasetValidationError, match="not a json file"):
        validate_coco_json(*split)


def _degenerate(coco):
    ann(coco, 1001).update(bbox=[4, 3, 0, 5])  # zero width
    ann(coco, 2000).update(bbox=[2, 4, 6, 0])  # zero height
    ann(coco, 3000).update(bbox=[16, 3, 5, 5])  # right of the 16-px image
    ann(coco, 1000).update(segmentation=[[1, 2, 3, 4]])  # 2 points only
    kept = {**ann(coco, 1000), "id": 1002, "bbox": [12, 12, 8, 8]}  # partly outside: kept
    kept["segmentation"] = [[12, 12, 15, 12, 15, 15], [1, 1, 2, 2]]  # one polygon removed
    coco["annotations"].append(kept)


def test_degenerate_annotations_are_dropped_counted_and_logged(split, caplog, monkeypatch):
    capture_log(caplog, monkeypatch)
    edit(split[0], _degenerate)
    report = validate_coco_json(*split)
    assert report.dropped == {ZERO_AREA: [1001, 2000], OUTSIDE: [3000], NO_POLYGON: [1000]}
    assert (report.num_dropped, report.polygons_removed, report.boxes_partly_outside) == (4, 1, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{split[0]}: dropped 2 annotations with a zero-area box (ids 1001, 2000)." in warnings
    assert any("dropped 1 annotations with a box entirely outside" in w for w in warnings)
    assert any("dropped 1 annotations without a polygon of 3" in w for w in warnings)
    assert any("removed 1 polygons" in w for w in warnings)
    assert any(
        "1 boxes extend past the image border (kept" in r.getMessage() for r in caplog.records
    )


def _source(json_file, image_root) -> DatasetSource:
    files = SplitFiles(json_file, image_root)
    return DatasetSource(
        name="validation_test", class_names=("dog", "cat"), train=files, test=files
    )


@pytest.mark.usefixtures("clean_catalogs")
def test_loader_drops_what_the_report_drops(split):
    edit(split[0], _degenerate)
    records = load_source_split(_source(*split), "train")
    annotations = [a for r in records for a in r["annotations"]]
    assert len(records) == 3 and len(annotations) == 1
    assert annotations[0]["bbox"] == [12, 12, 8, 8] and annotations[0]["category_name"] == "dog"
    assert "id" not in annotations[0] and len(annotations[0]["segmentation"]) == 1


@pytest.mark.usefixtures("clean_catalogs")
def test_loader_stops_on_a_schema_error(split):
    edit(split[0], lambda c: ann(c, 1001).update(bbox=[1, 2]))
    with pytest.raises(DatasetValidationError, match="annotation id 1001 \\(image 1\\): 'bbox'"):
        load_source_split(_source(*split), "train")


def test_missing_images_are_listed_with_their_count(tmp_path, split_writer):
    json_file, image_root = str(tmp_path / "a.json"), str(tmp_path / "images")
    split_writer(json_file, image_root, {i: ["dog"] for i in range(1, 8)}, CATEGORIES)
    for i in (2, 3, 4, 5, 6, 7):
        os.remove(os.path.join(image_root, f"{i:06d}.png"))
    for check in ("sizes", "exists"):
        with pytest.raises(DatasetValidationError) as info:
            validate_coco_json(json_file, image_root, check_images=check)
        message = str(info.value)
        assert f"6 of 7 image files under {image_root} are missing" in message
        assert os.path.join(image_root, "000006.png") in message  # the first 5 are listed
        assert "000007.png" not in message and "put the images there" in message
    assert validate_coco_json(json_file, image_root, check_images="none").image_check == "none"


def test_image_of_another_size_or_unreadable(split):
    json_file, image_root = split
    write_image(os.path.join(image_root, "000002.png"), 20, 20)
    with pytest.raises(DatasetValidationError) as info:
        validate_coco_json(json_file, image_root)
    message, path = str(info.value), os.path.join(image_root, "000002.png")
    assert "1 of 3 image files" in message and "fix 'width'/'height'" in message
    assert f"image id 2: {path} is 20x20, the json says 16x16" in message
    assert validate_coco_json(json_file, image_root, check_images="exists").image_check == "exists"

    with open(os.path.join(image_root, "000003.png"), "wb") as f:
        f.write(b"not an image")
    with pytest.raises(DatasetValidationError, match="1 of 3 image files .* are unreadable"):
        validate_coco_json(json_file, image_root)


def test_size_check_applies_exif_rotation_as_detectron2_reads_it(tmp_path, split_writer):
    json_file, image_root = str(tmp_path / "a.json"), str(tmp_path / "images")
    split_writer(json_file, image_root, {1: ["dog"]}, CATEGORIES, images_on_disk=False)
    path = os.path.join(image_root, "000001.png")  # a JPEG, whatever its name: PIL reads content
    os.makedirs(image_root)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display: 16 wide × 8 high on disk, 8 × 16 when read
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(path, format="JPEG", exif=exif)
    assert utils.read_image(path).shape[:2] == (16, 8)
    edit(json_file, lambda c: c["images"][0].update(width=8, height=16))
    assert validate_coco_json(json_file, image_root).num_images == 1
    edit(json_file, lambda c: c["images"][0].update(width=16, height=8))
    with pytest.raises(DatasetValidationError, match="is 8x16, the json says 16x8"):
        validate_coco_json(json_file, image_root)


def test_auto_checks_sizes_of_small_datasets_and_existence_of_large_ones(split, monkeypatch):
    write_image(os.path.join(split[1], "000002.png"), 20, 20)
    with pytest.raises(DatasetValidationError):
        validate_coco_json(*split)  # 3 images: "sizes"
    monkeypatch.setattr(image_files, "AUTO_SIZE_CHECK_MAX_IMAGES", 2)
    assert validate_coco_json(*split).image_check == "exists"
    with pytest.raises(ValueError, match="check_images='all'"):
        validate_coco_json(*split, check_images="all")


@settings(max_examples=10, deadline=None, database=None)
@given(seed=st.integers(0, 2**16), image_size=st.sampled_from([32, 48, 64]))
def test_synthetic_masks_lie_inside_their_boxes_and_are_not_empty(seed, image_size):
    with tempfile.TemporaryDirectory() as root:
        generate_synthetic(root, num_train=3, num_val=0, image_size=image_size, seed=seed)
        json_file = os.path.join(root, "train.json")
        assert validate_coco_json(json_file, os.path.join(root, "train")).num_dropped == 0
        with open(json_file) as f:
            coco = json.load(f)
    for annotation in coco["annotations"]:
        mask = mask_util.decode(annotation["segmentation"])
        x, y, w, h = annotation["bbox"]
        assert annotation["area"] == mask.sum() > 0 and w > 0 and h > 0
        assert 0 <= x and x + w <= image_size and 0 <= y and y + h <= image_size
        ys, xs = np.nonzero(mask)
        assert x <= xs.min() and xs.max() < x + w and y <= ys.min() and ys.max() < y + h
