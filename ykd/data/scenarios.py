"""
Class-incremental scenarios: ``A-B`` parsing, tasks and the old/new/seen class sets of each step.

A scenario ``A-B`` on a dataset with N classes learns classes 1..A at step 0, then the next B classes
at each later step until all N are seen (``15-1`` on 20 classes: 6 steps). Classes are referred
to by their position in the scenario's class order ("contiguous ids", 0-based), which is also the
model's class index: at step t the model predicts the seen classes ``0 .. num_seen(t) - 1``.
"""

import random
import re
from dataclasses import dataclass

_SCENARIO_PATTERN = re.compile(r"^\s*(\d+)-(\d+)\s*$")
SETTINGS = ("overlapped", "disjoint")


class ScenarioError(ValueError):
    """A scenario, step, setting or class order that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class Scenario:
    """
    A parsed ``A-B`` scenario over ``num_classes`` classes.

    Attributes:
        name: the scenario string, e.g. "15-5".
        num_classes: N, the number of classes of the dataset.
        base: A, the number of classes learned at step 0.
        increment: B, the number of classes learned at each later step.
    """

    name: str
    num_classes: int
    base: int
    increment: int

    @property
    def num_steps(self) -> int:
        """Number of steps, step 0 included (``15-1`` on 20 classes has 6)."""
        if self.increment == 0:
            return 1
        return 1 + (self.num_classes - self.base) // self.increment

    def task(self, step: int) -> list[int]:
        """Contiguous ids of the classes learned at ``step``."""
        self.check_step(step)
        start = 0 if step == 0 else self.base + (step - 1) * self.increment
        return list(range(start, self.num_seen(step)))

    def tasks(self) -> list[list[int]]:
        """The classes of every task, in step order."""
        return [self.task(t) for t in range(self.num_steps)]

    def num_seen(self, step: int) -> int:
        """Number of classes seen up to and including ``step``."""
        self.check_step(step)
        return self.base + step * self.increment

    def old_classes(self, step: int) -> list[int]:
        """Classes of the tasks before ``step``."""
        return list(range(self.num_seen(step) - len(self.task(step))))

    def new_classes(self, step: int) -> list[int]:
        """Classes of task ``step``."""
        return self.task(step)

    def seen_classes(self, step: int) -> list[int]:
        """Old and new classes of ``step``."""
        return list(range(self.num_seen(step)))

    def future_classes(self, step: int) -> list[int]:
        """Classes of the tasks after ``step``."""
        return list(range(self.num_seen(step), self.num_classes))

    def check_step(self, step: int) -> None:
        if not isinstance(step, int) or not 0 <= step < self.num_steps:
            raise ScenarioError(
                f"Step {step} is out of range for scenario {self.name} on {self.num_classes} classes:"
                f" use a step from 0 to {self.num_steps - 1}."
            )


def parse_scenario(name: str, num_classes: int) -> Scenario:
    """
    Parse an ``A-B`` scenario string for a dataset of ``num_classes`` classes.

    Raises:
        ScenarioError: if the string is not ``A-B`` with ``0 < A <= N``, ``B > 0`` and ``N - A``
            divisible by ``B``, or ``N-0`` (a single step over all classes, e.g. joint training).
    """
    match = _SCENARIO_PATTERN.match(str(name))
    if match is None:
        raise ScenarioError(
            f"Invalid scenario {name!r}: write it as 'A-B' (e.g. '15-5'), A base classes then B per step."
        )
    base, increment = int(match.group(1)), int(match.group(2))
    if base == num_classes and increment == 0:
        return Scenario(name=f"{base}-0", num_classes=num_classes, base=base, increment=0)
    if base <= 0 or increment <= 0:
        raise ScenarioError(
            f"Invalid scenario {name!r}: A and B must be positive (e.g. '15-5' on 20 classes),"
            f" or write '{num_classes}-0' for one step over all classes."
        )
    if base > num_classes or (num_classes - base) % increment != 0:
        raise ScenarioError(
            f"Invalid scenario {name!r} for {num_classes} classes: A must be at most {num_classes} and"
            f" {num_classes} - A must be a multiple of B (e.g. '{num_classes - 5}-5')."
        )
    return Scenario(
        name=f"{base}-{increment}", num_classes=num_classes, base=base, increment=increment
    )


def resolve_class_order(class_names: list[str], order: list[str] = (), seed: int = -1) -> list[str]:
    """
    The scenario's class order: ``order`` if given (a permutation of ``class_names``), else a
    permutation drawn with ``seed`` when ``seed >= 0``, else the dataset's own order.
    """
    if order:
        order = list(order)
        if sorted(order) != sorted(class_names):
            missing = sorted(set(class_names) - set(order))
            unknown = sorted(set(order) - set(class_names))
            duplicates = sorted({c for c in order if order.count(c) > 1})
            raise ScenarioError(
                "CONTINUAL.CLASS_ORDER is not a permutation of the dataset's classes"
                f" (missing: {missing}, unknown: {unknown}, repeated: {duplicates}):"
                " list every class name exactly once."
            )
        return order
    if seed >= 0:
        shuffled = list(class_names)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    return list(class_names)


def check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ScenarioError(f"Unknown setting {setting!r}: use one of {list(SETTINGS)}.")
    return setting
