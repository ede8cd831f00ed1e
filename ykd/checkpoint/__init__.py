"""Checkpoints of continual steps: meta records, step checks and growth from the previous step."""

from .growing import (
    CheckpointMismatchError,
    YKDCheckpointer,
    check_ykd_meta,
    grow_from_previous_step,
    make_ykd_meta,
    previous_step_meta,
)
from .sweep import step_average

__all__ = [
    "CheckpointMismatchError",
    "YKDCheckpointer",
    "check_ykd_meta",
    "grow_from_previous_step",
    "make_ykd_meta",
    "previous_step_meta",
    "step_average",
]
