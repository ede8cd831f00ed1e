"""Tests of the per-step filtering of records (splits.py): overlapped, disjoint, joint, test."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ykd.data.scenarios import ScenarioError, parse_scenario
from ykd.data.splits import filter_step

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, database=None)

# Six classes, scenario 2-2: task 0 = {a, b}, task 1 = {c, d}, task 2 = {e, f}.
ORDER = ["a", "b", "c", "d", "e", "f"]
SCENARIO = parse_scenario("2-2", 6)


def record(image_id, *names):
    return {
        "file_name": f"/data/{image_id}.png",
        "image_id": image_id,
        "height": 8,
        "width": 8,
        "annotations": [
            {"category_name": n, "bbox": [i, i, 2, 2], "bbox_mode": 1, "iscrowd": 0}
            for i, n in enumerate(names)
        ],
    }


RECORDS = [
    record(1, "a", "b"),  # task 0 only
    record(2, "a", "c"),  # old + new (at step 1)
    record(3, "d"),  # new only
    record(4, "c", "e"),  # new + future
    record(5, "f"),  # future only
    record(6),  # no annotation at all
    record(7, "b", "f"),  # old + future
]


def labels(records):
    """image id -> the (category_id, bbox x) of its annotations, in order."""
    return {
        r["image_id"]: [(a["category_id"], a["bbox"][0]) for a in r["annotations"]] for r in records
    }


def cut(step, is_train, **kwargs):
    return filter_step(
        RECORDS, class_order=ORDER, scenario=SCENARIO, step=step, is_train=is_train, **kwargs
    )


# Expected splits written by hand from the rules in ykd/data/splits.py's docstring (a=0, b=1,
# c=2, d=3, e=4, f=5; the second element of each pair is the annotation's position in its image).
def test_overlapped_step1_keeps_images_with_a_new_class_and_only_new_labels():
    assert labels(cut(1, True)) == {2: [(2, 1)], 3: [(3, 0)], 4: [(2, 0)]}


def test_disjoint_step1_also_drops_images_with_a_future_class():
    assert labels(cut(1, True, setting="disjoint")) == {2: [(2, 1)], 3: [(3, 0)]}


def test_joint_step1_keeps_all_seen_labels():
    expected = {1: [(0, 0), (1, 1)], 2: [(0, 0), (2, 1)], 3: [(3, 0)], 4: [(2, 0)], 7: [(1, 0)]}
    assert labels(cut(1, True, joint=True)) == expected


def test_joint_disjoint_step1_drops_future_images_and_keeps_seen_labels():
    expected = {1: [(0, 0), (1, 1)], 2: [(0, 0), (2, 1)], 3: [(3, 0)]}
    assert labels(cut(1, True, joint=True, setting="disjoint")) == expected


def test_test_split_step1_holds_the_seen_labels():
    expected = {1: [(0, 0), (1, 1)], 2: [(0, 0), (2, 1)], 3: [(3, 0)], 4: [(2, 0)], 7: [(1, 0)]}
    assert labels(cut(1, False)) == expected
    # The training setting does not change the test split.
    assert cut(1, False, setting="disjoint") == cut(1, False)


def test_step0_and_last_step():
    assert labels(cut(0, True)) == {1: [(0, 0), (1, 1)], 2: [(0, 0)], 7: [(1, 0)]}
    assert labels(cut(0, True, setting="disjoint")) == {1: [(0, 0), (1, 1)]}
    assert labels(cut(2, True)) == {4: [(4, 1)], 5: [(5, 0)], 7: [(5, 1)]}
    # No future at the last step: disjoint = overlapped.
    assert cut(2, True, setting="disjoint") == cut(2, True)
    assert len(cut(2, False)) == 6  # every annotated image


def test_records_keep_their_fields_and_lose_the_class_name():
    out = cut(1, True)
    by_id = {r["image_id"]: r for r in out}
    assert by_id[2]["file_name"] == "/data/2.png"
    assert (by_id[2]["height"], by_id[2]["width"]) == (8, 8)
    annotation = by_id[2]["annotations"][0]
    assert annotation == {"category_id": 2, "bbox": [1, 1, 2, 2], "bbox_mode": 1, "iscrowd": 0}


def test_input_is_not_modified_and_output_is_independent():
    before = copy.deepcopy(RECORDS)
    out = cut(1, True, joint=True)
    assert RECORDS == before
    out[0]["annotations"].append({"category_id": 0})
    out[0]["annotations"][0]["category_id"] = 5
    out[0]["extra"] = True
    assert RECORDS == before


def test_class_order_decides_the_ids():
    order = ["f", "e", "d", "c", "b", "a"]  # task 1 = {d, c}
    out = filter_step(RECORDS, class_order=order, scenario=SCENARIO, step=1, is_train=True)
    # d -> 2, c -> 3: images 2 (c), 3 (d), 4 (c).
    assert labels(out) == {2: [(3, 1)], 3: [(2, 0)], 4: [(3, 0)]}


def test_invalid_setting():
    with pytest.raises(ScenarioError, match="Unknown setting 'joint'"):
        cut(1, True, setting="joint")


def test_record_without_annotations_key_is_dropped():
    records = [{"file_name": "x.png", "image_id": 1, "height": 8, "width": 8}]
    assert filter_step(records, class_order=ORDER, scenario=SCENARIO, step=0, is_train=False) == []


# ----------------------------------------------------------------------------------------------
# Properties on random record sets


@st.composite
def cases(draw):
    """A scenario on N <= 8 classes, a step, and records whose annotations use random classes."""
    base = draw(st.integers(1, 4))
    increment = draw(st.integers(1, 3))
    k = draw(st.integers(0, 3))
    num_classes = base + k * increment
    names = [f"c{i}" for i in range(num_classes)]
    order = draw(st.permutations(names))
    scenario = parse_scenario(f"{base}-{increment}", num_classes)
    step = draw(st.integers(0, scenario.num_steps - 1))
    images = draw(st.lists(st.lists(st.sampled_from(names), max_size=5), max_size=12))
    records = []
    for image_id, image_names in enumerate(images):
        records.append(
            {
                "file_name": f"{image_id}.png",
                "image_id": image_id,
                "height": 10,
                "width": 10,
                "annotations": [
                    {"category_name": n, "bbox": [j, 0, 1, 1], "segmentation": [[0, 0, 1, 0, 1, 1]]}
                    for j, n in enumerate(image_names)
                ],
            }
        )
    return list(order), scenario, step, records


def class_sets(order, scenario, step):
    """Names of the old, new and future classes, from the order and the task sizes alone."""
    num_old = scenario.base + (step - 1) * scenario.increment if step > 0 else 0
    num_seen = scenario.base + step * scenario.increment
    return set(order[:num_old]), set(order[num_old:num_seen]), set(order[num_seen:])


def expected(records, order, keep_image, labelled):
    """The spec: kept images with their ``labelled`` annotations, relabelled by position."""
    out = {}
    for rec in records:
        names = [a["category_name"] for a in rec["annotations"]]
        kept = [(order.index(a["category_name"]), a["bbox"][0]) for a in rec["annotations"]]
        kept = [pair for pair, n in zip(kept, names, strict=True) if n in labelled]
        if keep_image(set(names)) and kept:
            out[rec["image_id"]] = kept
    return out


@PROPERTY_SETTINGS
@given(cases())
def test_train_and_test_splits_follow_the_spec(case):
    order, scenario, step, records = case
    before = copy.deepcopy(records)
    old, new, future = class_sets(order, scenario, step)
    seen = old | new

    def run(is_train, **kwargs):
        return filter_step(
            records, class_order=order, scenario=scenario, step=step, is_train=is_train, **kwargs
        )

    overlapped, disjoint = run(True), run(True, setting="disjoint")
    joint, test = run(True, joint=True), run(False)

    def ids(names):
        return {order.index(n) for n in names}

    for out in (overlapped, disjoint, joint, test):
        for rec in out:
            assert rec["annotations"], "a kept image has no annotation"
            for annotation in rec["annotations"]:
                assert "category_name" not in annotation
                assert annotation["category_id"] in ids(seen)  # never a future class
    for rec in overlapped + disjoint:
        assert {a["category_id"] for a in rec["annotations"]} <= ids(new)  # never an old class

    assert labels(overlapped) == expected(records, order, lambda names: True, new)
    assert labels(disjoint) == expected(records, order, lambda names: not names & future, new)
    assert labels(joint) == expected(records, order, lambda names: True, seen)
    assert labels(test) == expected(records, order, lambda names: True, seen)

    # Disjoint is overlapped minus whole images; the test split ignores the training setting.
    assert all(rec in overlapped for rec in disjoint)
    assert run(False, setting="disjoint") == test
    assert records == before


@PROPERTY_SETTINGS
@given(cases())
def test_steps_cover_every_annotation_once(case):
    # Over all steps, the overlapped training splits label each annotation exactly once (in the
    # step of its class), and the last test split holds every annotation.
    order, scenario, _, records = case
    seen_pairs = []
    for step in range(scenario.num_steps):
        out = filter_step(records, class_order=order, scenario=scenario, step=step, is_train=True)
        seen_pairs += [(r["image_id"], a["bbox"][0]) for r in out for a in r["annotations"]]
    all_pairs = [(r["image_id"], a["bbox"][0]) for r in records for a in r["annotations"]]
    assert sorted(seen_pairs) == sorted(all_pairs)
    last = filter_step(
        records,
        class_order=order,
        scenario=scenario,
        step=scenario.num_steps - 1,
        is_train=False,
    )
    assert sum(len(r["annotations"]) for r in last) == len(all_pairs)
