"""Tests of ``A-B`` scenario parsing, tasks, per-step class sets and class orders (scenarios.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ykd.data.scenarios import (
    Scenario,
    ScenarioError,
    check_setting,
    parse_scenario,
    resolve_class_order,
)

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, database=None)


def r(start, stop):
    """Classes ``start .. stop`` (inclusive), as a list."""
    return list(range(start, stop + 1))


# Tasks written out by hand from the definition of ``A-B``: A classes at step 0, then B per step.
SCENARIOS = [
    ("15-5", 20, [r(0, 14), r(15, 19)]),
    ("19-1", 20, [r(0, 18), [19]]),
    ("15-1", 20, [r(0, 14), [15], [16], [17], [18], [19]]),
    ("10-10", 20, [r(0, 9), r(10, 19)]),
    ("10-5", 20, [r(0, 9), r(10, 14), r(15, 19)]),
    ("10-2", 20, [r(0, 9), [10, 11], [12, 13], [14, 15], [16, 17], [18, 19]]),
    ("40-40", 80, [r(0, 39), r(40, 79)]),
    ("70-10", 80, [r(0, 69), r(70, 79)]),
    ("40-10", 80, [r(0, 39), r(40, 49), r(50, 59), r(60, 69), r(70, 79)]),
    ("20-0", 20, [r(0, 19)]),
    ("80-0", 80, [r(0, 79)]),
]


@pytest.mark.parametrize("name, num_classes, tasks", SCENARIOS)
def test_known_scenarios(name, num_classes, tasks):
    scenario = parse_scenario(name, num_classes)
    assert scenario.name == name
    assert scenario.num_classes == num_classes
    assert scenario.num_steps == len(tasks)
    assert scenario.tasks() == tasks
    for step, task in enumerate(tasks):
        assert scenario.task(step) == scenario.new_classes(step) == task
        assert scenario.num_seen(step) == task[-1] + 1


def test_step_counts_counted_by_hand():
    # Counted by hand: 15-1 on VOC is 1 + 5 steps, 10-5 is 1 + 2, 19-1 is 1 + 1, 40-10 is 1 + 4.
    assert parse_scenario("15-1", 20).num_steps == 6
    assert parse_scenario("10-5", 20).num_steps == 3
    assert parse_scenario("19-1", 20).num_steps == 2
    assert parse_scenario("40-10", 80).num_steps == 5
    assert parse_scenario("20-0", 20).num_steps == 1


def test_class_sets_of_each_step_of_15_1():
    scenario = parse_scenario("15-1", 20)
    assert scenario.old_classes(0) == []
    assert scenario.new_classes(0) == r(0, 14)
    assert scenario.seen_classes(0) == r(0, 14)
    assert scenario.future_classes(0) == r(15, 19)

    assert scenario.old_classes(3) == r(0, 16)
    assert scenario.new_classes(3) == [17]
    assert scenario.seen_classes(3) == r(0, 17)
    assert scenario.future_classes(3) == [18, 19]

    assert scenario.old_classes(5) == r(0, 18)
    assert scenario.new_classes(5) == [19]
    assert scenario.seen_classes(5) == r(0, 19)
    assert scenario.future_classes(5) == []


def test_class_sets_of_coco_40_10():
    scenario = parse_scenario("40-10", 80)
    assert scenario.old_classes(2) == r(0, 49)
    assert scenario.new_classes(2) == r(50, 59)
    assert scenario.future_classes(2) == r(60, 79)
    assert scenario.num_seen(4) == 80


def test_single_step_scenario_has_no_future():
    scenario = parse_scenario("20-0", 20)
    assert scenario.old_classes(0) == []
    assert scenario.seen_classes(0) == r(0, 19)
    assert scenario.future_classes(0) == []


def test_name_is_normalised():
    assert parse_scenario(" 15-5 ", 20).name == "15-5"
    assert parse_scenario("015-05", 20) == parse_scenario("15-5", 20)
    assert parse_scenario("20-00", 20).name == "20-0"


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("15-7", ["'15-7'", "multiple of"]),  # 20 - 15 is not a multiple of 7
        ("0-5", ["'0-5'", "positive"]),
        ("abc", ["'abc'", "'A-B'"]),
        ("5-0", ["'5-0'", "'20-0'"]),  # B = 0 only for a single step over all 20 classes
        ("25-5", ["'25-5'", "at most 20"]),
        ("21-1", ["'21-1'", "at most 20"]),  # 20 - 21 = -1 is a multiple of 1, A > N all the same
        ("", ["'A-B'"]),
        ("15-", ["'A-B'"]),
        ("-5", ["'A-B'"]),
        ("15-5-5", ["'A-B'"]),
        ("1.5-5", ["'A-B'"]),
        ("15 - 5", ["'A-B'"]),
        ("0-0", ["positive"]),
    ],
)
def test_invalid_scenarios(name, fragments):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(name, 20)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    # The message names the fix with an example or the expected form.
    assert "e.g." in message or "write" in message


def test_base_of_all_classes_is_a_single_step_whatever_the_increment():
    assert parse_scenario("20-5", 20).tasks() == [r(0, 19)]
    assert parse_scenario("20-40", 20).tasks() == [r(0, 19)]


@pytest.mark.parametrize("step", [-1, 2, 7])
def test_step_out_of_range_names_the_valid_range(step):
    scenario = parse_scenario("15-5", 20)
    for method in (
        scenario.task,
        scenario.new_classes,
        scenario.old_classes,
        scenario.seen_classes,
        scenario.future_classes,
        scenario.num_seen,
    ):
        with pytest.raises(ScenarioError, match="from 0 to 1"):
            method(step)


def test_step_must_be_an_integer():
    with pytest.raises(ScenarioError, match="from 0 to 5"):
        parse_scenario("15-1", 20).task(1.5)


def test_check_setting():
    assert check_setting("overlapped") == "overlapped"
    assert check_setting("disjoint") == "disjoint"
    for bad in ("joint", "Overlapped", ""):
        with pytest.raises(ScenarioError, match=r"\['overlapped', 'disjoint'\]"):
            check_setting(bad)


# ----------------------------------------------------------------------------------------------
# Class order

CLASSES = ["cat", "dog", "cow", "bus", "car", "sofa"]


def test_default_order_is_the_dataset_order():
    assert resolve_class_order(CLASSES) == CLASSES
    assert resolve_class_order(CLASSES, [], -1) == CLASSES
    assert resolve_class_order(CLASSES, [], -1) is not CLASSES  # a copy


def test_explicit_order_is_used_as_given():
    order = ["sofa", "car", "bus", "cow", "dog", "cat"]
    assert resolve_class_order(CLASSES, order) == order
    # An explicit order wins over a seed.
    assert resolve_class_order(CLASSES, order, seed=3) == order


@pytest.mark.parametrize(
    "order, fragments",
    [
        (["cat", "dog", "cow", "bus", "car"], ["missing: ['sofa']"]),
        (["cat", "dog", "cow", "bus", "car", "sofa", "horse"], ["unknown: ['horse']"]),
        (["cat", "dog", "cow", "bus", "car", "car"], ["missing: ['sofa']", "repeated: ['car']"]),
        (["cat", "dog", "cow", "bus", "car", "sofa", "dog"], ["repeated: ['dog']"]),
        (["Cat", "dog", "cow", "bus", "car", "sofa"], ["missing: ['cat']", "unknown: ['Cat']"]),
    ],
)
def test_order_that_is_not_a_permutation(order, fragments):
    with pytest.raises(ScenarioError) as info:
        resolve_class_order(CLASSES, order)
    message = str(info.value)
    assert "CONTINUAL.CLASS_ORDER" in message
    assert "exactly once" in message
    for fragment in fragments:
        assert fragment in message


def test_seeded_order_is_a_deterministic_permutation():
    names = [f"class{i:02d}" for i in range(20)]
    orders = {seed: resolve_class_order(names, [], seed) for seed in range(5)}
    for seed, order in orders.items():
        assert sorted(order) == sorted(names)
        assert resolve_class_order(names, [], seed) == order
    # 20! orders: five seeds giving five distinct non-identity orders is what a shuffle does.
    assert len({tuple(o) for o in orders.values()}) == 5
    assert all(order != names for order in orders.values())
    assert names == [f"class{i:02d}" for i in range(20)]  # the input is not shuffled in place


# ----------------------------------------------------------------------------------------------
# Properties


@st.composite
def valid_scenarios(draw):
    """(N, A, B) with 0 < A <= N, B > 0 and B | N - A; k = number of incremental steps."""
    base = draw(st.integers(1, 60))
    increment = draw(st.integers(1, 20))
    k = draw(st.integers(0, 8))
    return base + k * increment, base, increment, k


@PROPERTY_SETTINGS
@given(valid_scenarios())
def test_tasks_partition_the_classes(params):
    num_classes, base, increment, k = params
    scenario = parse_scenario(f"{base}-{increment}", num_classes)
    assert scenario.num_steps == k + 1
    tasks = scenario.tasks()
    assert len(tasks) == k + 1
    # In order and contiguous: concatenated, the tasks are 0 .. N-1, each class exactly once.
    assert [c for task in tasks for c in task] == list(range(num_classes))
    assert [len(task) for task in tasks] == [base] + [increment] * k
    for step in range(scenario.num_steps):
        old, new = scenario.old_classes(step), scenario.new_classes(step)
        seen, future = scenario.seen_classes(step), scenario.future_classes(step)
        assert old == [c for task in tasks[:step] for c in task]
        assert new == tasks[step]
        assert seen == old + new
        assert future == [c for task in tasks[step + 1 :] for c in task]
        assert seen + future == list(range(num_classes))
    with pytest.raises(ScenarioError):
        scenario.task(scenario.num_steps)


@PROPERTY_SETTINGS
@given(st.integers(1, 100), st.integers(0, 120), st.integers(0, 30))
def test_parse_accepts_exactly_the_valid_scenarios(num_classes, base, increment):
    valid = (
        0 < base <= num_classes and increment > 0 and (num_classes - base) % increment == 0
    ) or (base == num_classes and increment == 0)
    name = f"{base}-{increment}"
    if valid:
        scenario = parse_scenario(name, num_classes)
        assert scenario == Scenario(name, num_classes, base, increment)
    else:
        with pytest.raises(ScenarioError, match=name):
            parse_scenario(name, num_classes)


@PROPERTY_SETTINGS
@given(
    st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=25, unique=True),
    st.integers(0, 2**31),
)
def test_seeded_order_property(names, seed):
    order = resolve_class_order(names, [], seed)
    assert sorted(order) == sorted(names)
    assert resolve_class_order(list(names), (), seed) == order
    # Feeding the seeded order back as an explicit order is accepted unchanged.
    assert resolve_class_order(names, order) == order
