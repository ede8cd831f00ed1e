"""
Tests of the registration of step datasets (continual.py) over the sources of ykd/data/datasets:
names, metadata, the records that ``DatasetCatalog.get`` returns, and the errors of bad input.
"""

import json
import os

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode

from ykd.data import ScenarioError, register_step_datasets
from ykd.data.datasets import DATASET_SOURCES

pytestmark = pytest.mark.usefixtures("clean_catalogs")

# Pascal VOC's classes, alphabetical: the voc_sbd default order, written out here.
VOC = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]  # fmt: skip
VOC_IDS = {name: i + 1 for i, name in enumerate(VOC)}  # SBD json ids, as MMA's files have them

# VOC fixture: image id -> class names of its instances. In 15-5, task 1 = pottedplant(15),
# sheep(16), sofa(17), train(18), tvmonitor(19); also used: aeroplane(0), car(6), dog(11),
# person(14).
VOC_TRAIN = {
    1: ["person", "dog"],  # task 0 only
    2: ["person", "sheep"],  # task 0 + task 1
    3: ["tvmonitor"],  # task 1 only
    4: ["aeroplane", "sofa", "train"],  # task 0 + task 1
    5: ["car", "car"],  # task 0 only
}
VOC_VAL = {11: ["dog"], 12: ["sheep", "car"], 13: ["tvmonitor"]}

# A few real COCO categories with their real ids (not contiguous) and, by hand, their position
# among COCO's 80 thing classes (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are unused):
# person 1 -> 0, bicycle 2 -> 1, car 3 -> 2, dog 18 -> 16, pizza 59 -> 53, toaster 80 -> 70,
# toothbrush 90 -> 79.
COCO_IDS = {"person": 1, "bicycle": 2, "car": 3, "dog": 18, "pizza": 59, "toaster": 80}
COCO_IDS["toothbrush"] = 90
COCO_TRAIN = {
    101: ["person", "dog"],
    102: ["pizza", "person"],
    103: ["toaster"],
    104: ["toothbrush", "bicycle", "toaster"],
    105: ["car"],
}
COCO_VAL = {201: ["dog", "pizza"], 202: ["toaster"], 203: ["bicycle"]}


def write_voc(root, split_writer, train=None, val=None, categories=None):
    """``<root>/voc/pascal_sbd_{train,val}.json``, images in ``<root>/voc/JPEGImages``."""
    voc = os.path.join(root, "voc")
    for split, images in (("train", train or VOC_TRAIN), ("val", val or VOC_VAL)):
        split_writer(
            os.path.join(voc, f"pascal_sbd_{split}.json"),
            voc,
            images,
            categories or VOC_IDS,
            subdir="JPEGImages/",
            segmentation="polygon",
        )
    return voc


def write_coco(root, split_writer, images_on_disk=True):
    """`coco/annotations/instances_{train,val}2017.json` and `coco/{train,val}2017` under root."""
    coco = os.path.join(root, "coco")
    for split, images in (("train2017", COCO_TRAIN), ("val2017", COCO_VAL)):
        split_writer(
            os.path.join(coco, "annotations", f"instances_{split}.json"),
            os.path.join(coco, split),
            images,
            COCO_IDS,
            segmentation="rle",
            images_on_disk=images_on_disk,
        )
    return coco


@pytest.fixture
def voc_root(datasets_root, split_writer):
    return write_voc(datasets_root, split_writer)


@pytest.fixture
def coco_root(datasets_root, split_writer):
    return write_coco(datasets_root, split_writer)


def labels(records):
    """image id -> category ids of its annotations, in order."""
    return {r["image_id"]: [a["category_id"] for a in r["annotations"]] for r in records}


def check_loadable(records, num_classes, image_root):
    """The records are Detectron2 dataset dicts that its own utilities turn into instances."""
    for record in records:
        assert record["file_name"].startswith(image_root + os.sep)
        image = utils.read_image(record["file_name"], format="BGR")
        assert image.shape == (record["height"], record["width"], 3)
        for annotation in record["annotations"]:
            assert annotation["bbox_mode"] == BoxMode.XYWH_ABS
            assert "category_name" not in annotation
        instances = utils.annotations_to_instances(
            record["annotations"], image.shape[:2], mask_format="bitmask"
        )
        expected = [a["category_id"] for a in record["annotations"]]
        assert instances.gt_classes.tolist() == expected
        assert all(0 <= c < num_classes for c in expected)
        assert bool(instances.gt_masks.tensor.flatten(1).any(dim=1).all())
        assert torch.all(instances.gt_boxes.area() > 0)


# ----------------------------------------------------------------------------------------------
# voc_sbd


def test_voc_15_5_names_and_metadata(voc_root, cfg_factory):
    cfg = cfg_factory("voc_sbd", scenario="15-5", step=1)
    datasets = register_step_datasets(cfg)
    assert datasets.train_name == "voc_sbd_15-5_overlapped_step1_train"
    assert datasets.test_name == "voc_sbd_15-5_overlapped_step1_test"
    assert datasets.step == 1
    assert datasets.class_order == tuple(VOC)
    assert datasets.seen_class_names == VOC
    assert datasets.num_classes_per_task == [15, 5]
    for name in (datasets.train_name, datasets.test_name):
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == VOC
        assert meta.ykd_tasks == [list(range(15)), list(range(15, 20))]
        assert meta.ykd_step == 1
        assert meta.ykd_scenario == "15-5"
        assert meta.ykd_class_order == VOC
        assert meta.thing_dataset_id_to_contiguous_id == {i: i for i in range(20)}
        assert meta.evaluator_type == "coco"

    step0 = register_step_datasets(cfg, step=0)
    assert step0.train_name == "voc_sbd_15-5_overlapped_step0_train"
    meta = MetadataCatalog.get(step0.test_name)
    assert meta.thing_classes == VOC[:15]
    assert meta.ykd_tasks == [list(range(15))]
    assert meta.ykd_step == 0
    assert meta.thing_dataset_id_to_contiguous_id == {i: i for i in range(15)}


def test_voc_15_5_records(voc_root, cfg_factory):
    step0 = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", step=0))
    step1 = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", step=1))
    train0 = DatasetCatalog.get(step0.train_name)
    assert labels(train0) == {1: [14, 11], 2: [14], 4: [0], 5: [6, 6]}
    assert labels(DatasetCatalog.get(step1.train_name)) == {2: [16], 3: [19], 4: [17, 18]}
    test0 = DatasetCatalog.get(step0.test_name)
    assert labels(test0) == {11: [11], 12: [6]}
    test1 = DatasetCatalog.get(step1.test_name)
    assert labels(test1) == {11: [11], 12: [16, 6], 13: [19]}
    # Images are found relative to voc/, as the json's file names say.
    record = next(r for r in train0 if r["image_id"] == 5)
    assert record["file_name"] == os.path.join(voc_root, "JPEGImages", "000005.png")
    check_loadable(train0, 15, voc_root)
    check_loadable(test1, 20, voc_root)


def test_voc_disjoint_and_joint(voc_root, cfg_factory):
    disjoint = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", setting="disjoint"))
    assert disjoint.train_name == "voc_sbd_15-5_disjoint_step0_train"
    # Images 2 (sheep) and 4 (sofa, train) hold future classes.
    assert labels(DatasetCatalog.get(disjoint.train_name)) == {1: [14, 11], 5: [6, 6]}
    assert labels(DatasetCatalog.get(disjoint.test_name)) == {11: [11], 12: [6]}

    joint = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", step=1, joint=True))
    assert joint.train_name == "voc_sbd_15-5_overlapped_joint_step1_train"
    expected = {1: [14, 11], 2: [14, 16], 3: [19], 4: [0, 17, 18], 5: [6, 6]}
    assert labels(DatasetCatalog.get(joint.train_name)) == expected


def test_voc_19_1_and_10_5(voc_root, cfg_factory):
    last = register_step_datasets(cfg_factory("voc_sbd", scenario="19-1", step=1))
    assert last.num_classes_per_task == [19, 1]
    assert labels(DatasetCatalog.get(last.train_name)) == {3: [19]}
    assert MetadataCatalog.get(last.train_name).ykd_tasks == [list(range(19)), [19]]

    middle = register_step_datasets(cfg_factory("voc_sbd", scenario="10-5"), step=1)
    assert middle.train_name == "voc_sbd_10-5_overlapped_step1_train"
    assert middle.num_classes_per_task == [10, 5]
    assert middle.seen_class_names == VOC[:15]
    # Task 1 = classes 10..14 (diningtable .. person): dog (11) and person (14).
    assert labels(DatasetCatalog.get(middle.train_name)) == {1: [14, 11], 2: [14]}


def test_single_step_scenario(voc_root, cfg_factory):
    datasets = register_step_datasets(cfg_factory("voc_sbd", scenario="20-0"))
    assert datasets.train_name == "voc_sbd_20-0_overlapped_step0_train"
    assert datasets.num_classes_per_task == [20]
    expected = {1: [14, 11], 2: [14, 16], 3: [19], 4: [0, 17, 18], 5: [6, 6]}
    assert labels(DatasetCatalog.get(datasets.train_name)) == expected


def test_class_names_not_json_ids_decide_the_classes(datasets_root, split_writer, cfg_factory):
    # The same fixture with the category ids assigned in reverse: records must not change.
    reversed_ids = {name: 20 - i for i, name in enumerate(VOC)}
    voc = write_voc(datasets_root, split_writer, categories=reversed_ids)
    datasets = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", step=1))
    assert labels(DatasetCatalog.get(datasets.train_name)) == {2: [16], 3: [19], 4: [17, 18]}
    assert labels(DatasetCatalog.get(datasets.test_name)) == {11: [11], 12: [16, 6], 13: [19]}
    check_loadable(DatasetCatalog.get(datasets.train_name), 20, voc)


def test_explicit_class_order(voc_root, cfg_factory):
    order = VOC[::-1]  # class k of the scenario is VOC[19 - k]
    cfg = cfg_factory("voc_sbd", scenario="15-5", class_order=order)
    step0 = register_step_datasets(cfg)
    assert step0.train_name.startswith("voc_sbd_15-5_overlapped_order")
    assert step0.train_name.endswith("_step0_train")
    digest = step0.train_name[len("voc_sbd_15-5_overlapped_order") : -len("_step0_train")]
    assert len(digest) == 8 and all(c in "0123456789abcdef" for c in digest)
    assert step0.class_order == tuple(order)
    meta = MetadataCatalog.get(step0.train_name)
    assert meta.thing_classes == order[:15] == VOC[5:][::-1]
    assert meta.ykd_class_order == order
    # person 14 -> 5, dog 11 -> 8, sheep 16 -> 3, sofa 17 -> 2, train 18 -> 1, tvmonitor 19 -> 0,
    # car 6 -> 13; aeroplane 0 -> 19 is the only class of task 1 that occurs.
    expected = {1: [5, 8], 2: [5, 3], 3: [0], 4: [2, 1], 5: [13, 13]}
    assert labels(DatasetCatalog.get(step0.train_name)) == expected
    step1 = register_step_datasets(cfg, step=1)
    assert labels(DatasetCatalog.get(step1.train_name)) == {4: [19]}
    assert step1.train_name == step0.train_name.replace("step0", "step1")


def test_seeded_class_order(voc_root, cfg_factory):
    cfg = cfg_factory("voc_sbd", scenario="15-5", class_order_seed=7)
    datasets = register_step_datasets(cfg)
    again = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", class_order_seed=7))
    assert again == datasets
    assert "_order" in datasets.train_name
    order = list(datasets.class_order)
    assert sorted(order) == sorted(VOC) and order != VOC
    meta = MetadataCatalog.get(datasets.test_name)
    assert meta.thing_classes == order[:15]
    # Each label names the class the fixture put there.
    for split, fixture in ((datasets.train_name, VOC_TRAIN), (datasets.test_name, VOC_VAL)):
        records = DatasetCatalog.get(split)
        with_seen = {i for i, names in fixture.items() if set(names) & set(order[:15])}
        assert {r["image_id"] for r in records} == with_seen != set()
        for record in records:
            names = [meta.thing_classes[a["category_id"]] for a in record["annotations"]]
            assert names == [n for n in fixture[record["image_id"]] if n in order[:15]]
    other = register_step_datasets(cfg_factory("voc_sbd", scenario="15-5", class_order_seed=8))
    assert other.train_name != datasets.train_name


def test_registering_again_is_harmless_and_reads_the_new_files(
    datasets_root, split_writer, cfg_factory, monkeypatch, tmp_path
):
    write_voc(datasets_root, split_writer)
    cfg = cfg_factory("voc_sbd", scenario="15-5", step=1)
    first = register_step_datasets(cfg)
    assert register_step_datasets(cfg) == first  # no "already registered" error
    assert labels(DatasetCatalog.get(first.train_name)) == {2: [16], 3: [19], 4: [17, 18]}

    # Another dataset root, same scenario (hence same names): the catalog must serve the new data.
    other_root = tmp_path / "other"
    write_voc(other_root, split_writer, train={7: ["sheep"]}, val={8: ["car"]})
    monkeypatch.setenv("DETECTRON2_DATASETS", str(other_root))
    second = register_step_datasets(cfg)
    assert second.train_name == first.train_name
    assert labels(DatasetCatalog.get(second.train_name)) == {7: [16]}
    assert labels(DatasetCatalog.get(second.test_name)) == {8: [6]}


# ----------------------------------------------------------------------------------------------
# coco


def test_coco_40_40(coco_root, cfg_factory):
    step0 = register_step_datasets(cfg_factory("coco", scenario="40-40", step=0))
    assert step0.train_name == "coco_40-40_overlapped_step0_train"
    meta0 = MetadataCatalog.get(step0.train_name)
    assert len(meta0.thing_classes) == 40
    assert meta0.thing_classes[:3] == ["person", "bicycle", "car"]
    assert meta0.thing_classes[16] == "dog"
    assert meta0.thing_dataset_id_to_contiguous_id == {i: i for i in range(40)}
    train0 = DatasetCatalog.get(step0.train_name)
    assert labels(train0) == {101: [0, 16], 102: [0], 104: [1], 105: [2]}
    assert train0[0]["file_name"] == os.path.join(coco_root, "train2017", "000101.png")
    check_loadable(train0, 40, os.path.join(coco_root, "train2017"))

    step1 = register_step_datasets(cfg_factory("coco", scenario="40-40", step=1))
    meta1 = MetadataCatalog.get(step1.test_name)
    assert len(meta1.thing_classes) == 80
    assert [meta1.thing_classes[i] for i in (53, 70, 79)] == ["pizza", "toaster", "toothbrush"]
    assert meta1.ykd_tasks == [list(range(40)), list(range(40, 80))]
    assert labels(DatasetCatalog.get(step1.train_name)) == {102: [53], 103: [70], 104: [79, 70]}
    test1 = DatasetCatalog.get(step1.test_name)
    assert labels(test1) == {201: [16, 53], 202: [70], 203: [1]}
    check_loadable(test1, 80, os.path.join(coco_root, "val2017"))

    disjoint = register_step_datasets(cfg_factory("coco", scenario="40-40", setting="disjoint"))
    # 102 (pizza) and 104 (toothbrush, toaster) hold classes of task 1.
    assert labels(DatasetCatalog.get(disjoint.train_name)) == {101: [0, 16], 105: [2]}


def test_coco_70_10_and_40_10(coco_root, cfg_factory):
    step1 = register_step_datasets(cfg_factory("coco", scenario="70-10", step=1))
    assert labels(DatasetCatalog.get(step1.train_name)) == {103: [70], 104: [79, 70]}
    step0 = register_step_datasets(cfg_factory("coco", scenario="70-10", step=0))
    assert labels(DatasetCatalog.get(step0.test_name)) == {201: [16, 53], 203: [1]}

    # 40-10: step 0 + 4 incremental steps; pizza (53) is in task 2, toaster/toothbrush in task 4.
    step2 = register_step_datasets(cfg_factory("coco", scenario="40-10"), step=2)
    assert step2.num_classes_per_task == [40, 10, 10]
    assert labels(DatasetCatalog.get(step2.train_name)) == {102: [53]}
    step4 = register_step_datasets(cfg_factory("coco", scenario="40-10"), step=4)
    assert step4.num_classes_per_task == [40, 10, 10, 10, 10]
    assert MetadataCatalog.get(step4.train_name).ykd_step == 4
    assert labels(DatasetCatalog.get(step4.train_name)) == {103: [70], 104: [79, 70]}


# ----------------------------------------------------------------------------------------------
# synthetic


def expected_from_json(json_file, labelled, drop_if_any=()):
    """
    Image id -> category ids of the ``labelled`` classes, computed from the COCO file (classes in
    category-id order); images holding a class of ``drop_if_any`` or no labelled one are left out.
    """
    with open(json_file) as f:
        coco = json.load(f)
    order = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    position = {c["id"]: order.index(c["name"]) for c in coco["categories"]}
    per_image = {image["id"]: [] for image in coco["images"]}
    for annotation in coco["annotations"]:
        per_image[annotation["image_id"]].append(position[annotation["category_id"]])
    out = {}
    for image_id, classes in per_image.items():
        kept = [c for c in classes if c in labelled]
        if kept and not set(classes) & set(drop_if_any):
            out[image_id] = kept
    return out


@pytest.mark.parametrize(
    "scenario, step, setting, joint",
    [
        ("15-5", 0, "overlapped", False),
        ("15-5", 1, "overlapped", False),
        ("10-5", 1, "disjoint", False),
        ("15-1", 3, "overlapped", True),
    ],
)
def test_synthetic_steps_match_the_generated_json(
    synthetic_root, cfg_factory, scenario, step, setting, joint
):
    cfg = cfg_factory(
        "synthetic", synthetic_root, scenario=scenario, step=step, setting=setting, joint=joint
    )
    datasets = register_step_datasets(cfg)
    base, increment = (int(x) for x in scenario.split("-"))
    num_seen = base + step * increment
    seen = range(num_seen)
    new = range(num_seen - (increment if step else base), num_seen)
    future = range(num_seen, 20)
    train = DatasetCatalog.get(datasets.train_name)
    expected = expected_from_json(
        os.path.join(synthetic_root, "train.json"),
        seen if joint else new,
        future if setting == "disjoint" else (),
    )
    assert labels(train) == expected
    assert len(train) > 0
    test = DatasetCatalog.get(datasets.test_name)
    assert labels(test) == expected_from_json(os.path.join(synthetic_root, "val.json"), seen)
    # The default order is the json's category order.
    with open(os.path.join(synthetic_root, "train.json")) as f:
        categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    assert list(datasets.class_order) == [c["name"] for c in categories]
    assert MetadataCatalog.get(datasets.train_name).thing_classes == datasets.seen_class_names
    check_loadable(train[:5], num_seen, os.path.join(synthetic_root, "train"))


def test_synthetic_registration_is_lazy_and_first_load_generates(tmp_path, cfg_factory):
    root = tmp_path / "synthetic_cache"
    cfg = cfg_factory("synthetic", str(root), scenario="10-10")
    cfg.SYNTHETIC.NUM_TRAIN, cfg.SYNTHETIC.NUM_VAL = 12, 4
    datasets = register_step_datasets(cfg)
    assert datasets.train_name == "synthetic_10-10_overlapped_step0_train"
    assert not root.exists()  # nothing is read or written at registration
    train = DatasetCatalog.get(datasets.train_name)
    assert (root / "params.json").is_file()
    with open(root / "train.json") as f:
        assert len(json.load(f)["images"]) == 12
    assert labels(train) == expected_from_json(root / "train.json", range(10))


def test_the_dev_split_is_registered_apart_from_the_test_split(tmp_path, cfg_factory):
    root = tmp_path / "synthetic_cache"
    cfg = cfg_factory("synthetic", str(root), scenario="15-5", step=1, test_split="dev")
    cfg.SYNTHETIC.NUM_TRAIN, cfg.SYNTHETIC.NUM_VAL, cfg.SYNTHETIC.NUM_DEV = 6, 4, 5
    datasets = register_step_datasets(cfg)
    assert datasets.test_name == "synthetic_15-5_overlapped_step1_dev"
    dev = DatasetCatalog.get(datasets.test_name)
    assert (root / "dev_params.json").is_file()
    assert labels(dev) == expected_from_json(root / "dev.json", range(20))
    assert all(os.path.dirname(r["file_name"]) == str(root / "dev") for r in dev)
    test = register_step_datasets(cfg_factory("synthetic", str(root), scenario="15-5", step=1))
    assert test.test_name == "synthetic_15-5_overlapped_step1_test"


# ----------------------------------------------------------------------------------------------
# Bad input


def test_unknown_dataset_lists_the_known_ones(cfg_factory):
    before = set(DatasetCatalog.list())
    with pytest.raises(KeyError) as info:
        register_step_datasets(cfg_factory("pascal"))
    message = str(info.value)
    assert "'pascal'" in message and "CONTINUAL.DATASET" in message
    assert "'coco'" in message and "'synthetic'" in message and "'voc_sbd'" in message
    assert set(DatasetCatalog.list()) == before
    assert {"coco", "synthetic", "voc_sbd"} <= {name for name, _ in DATASET_SOURCES}


def test_missing_annotation_file_names_the_path(datasets_root, cfg_factory):
    datasets = register_step_datasets(cfg_factory("voc_sbd"))  # lazy: registering works
    assert list(datasets_root.iterdir()) == []  # and touches no file
    for name, file in ((datasets.train_name, "train"), (datasets.test_name, "val")):
        with pytest.raises(FileNotFoundError) as info:
            DatasetCatalog.get(name)
        message = str(info.value)
        assert os.path.join(str(datasets_root), "voc", f"pascal_sbd_{file}.json") in message
        assert "annotation file" in message and "DETECTRON2_DATASETS" in message


def test_missing_image_folder_names_the_path(datasets_root, split_writer, cfg_factory):
    write_coco(datasets_root, split_writer, images_on_disk=False)
    datasets = register_step_datasets(cfg_factory("coco", scenario="40-40"))
    with pytest.raises(FileNotFoundError) as info:
        DatasetCatalog.get(datasets.train_name)
    message = str(info.value)
    assert os.path.join(str(datasets_root), "coco", "train2017") in message
    assert "image folder" in message and "DETECTRON2_DATASETS" in message


def test_step_without_training_image(coco_root, cfg_factory):
    # 40-10, step 1 = classes 40..49: none of them occurs in the fixture.
    datasets = register_step_datasets(cfg_factory("coco", scenario="40-10", step=1))
    with pytest.raises(ScenarioError) as info:
        DatasetCatalog.get(datasets.train_name)
    message = str(info.value)
    assert datasets.train_name in message
    assert "step 1" in message and "40-10" in message and "no training image" in message
    assert "use another scenario" in message
    # The test split of that step has the seen classes' images.
    assert labels(DatasetCatalog.get(datasets.test_name)) == {201: [16], 203: [1]}


def test_json_category_that_is_not_a_class(datasets_root, split_writer, cfg_factory):
    categories = dict(VOC_IDS, tv=21)
    write_voc(datasets_root, split_writer, train={1: ["dog", "tv"]}, categories=categories)
    datasets = register_step_datasets(cfg_factory("voc_sbd"))
    with pytest.raises(ScenarioError) as info:
        DatasetCatalog.get(datasets.train_name)
    message = str(info.value)
    assert "['tv']" in message and "'voc_sbd'" in message
    assert "fix the annotation file" in message


@pytest.mark.parametrize(
    "keys, fragments",
    [
        ({"setting": "joint"}, ["Unknown setting 'joint'", "['overlapped', 'disjoint']"]),
        ({"scenario": "15-7"}, ["'15-7'", "multiple of"]),
        ({"scenario": "25-5"}, ["'25-5'", "at most 20"]),
        ({"scenario": "15-5", "step": 2}, ["Step 2", "from 0 to 1"]),
        ({"scenario": "15-1", "step": -1}, ["Step -1", "from 0 to 5"]),
        ({"class_order": VOC[:19]}, ["CLASS_ORDER", "missing: ['tvmonitor']"]),
        ({"class_order": VOC + ["dog"]}, ["CLASS_ORDER", "repeated: ['dog']"]),
    ],
)
def test_invalid_config_registers_nothing(voc_root, cfg_factory, keys, fragments):
    before = set(DatasetCatalog.list())
    with pytest.raises(ScenarioError) as info:
        register_step_datasets(cfg_factory("voc_sbd", **keys))
    for fragment in fragments:
        assert fragment in str(info.value)
    assert set(DatasetCatalog.list()) == before


def test_step_argument_out_of_range(voc_root, cfg_factory):
    with pytest.raises(ScenarioError, match="from 0 to 2"):
        register_step_datasets(cfg_factory("voc_sbd", scenario="10-5"), step=3)


def test_a_dev_split_the_dataset_lacks_or_an_unknown_split_is_refused(cfg_factory):
    with pytest.raises(ValueError, match="has no dev split: set CONTINUAL.TEST_SPLIT"):
        register_step_datasets(cfg_factory("voc_sbd", test_split="dev"))
    with pytest.raises(ValueError, match="CONTINUAL.TEST_SPLIT must be 'test' or 'dev'"):
        register_step_datasets(cfg_factory("synthetic", test_split="val"))
