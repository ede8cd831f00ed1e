"""Fixtures of the checkpoint tests: those of the Y-KD model tests (tiny configs and inputs)."""

from tests.modeling.conftest import _no_mkldnn, make_cfg, make_inputs  # noqa: F401

# The ykd meta record of a step-0 checkpoint of scenario 3-2 (for checkpoints of stand-in models).
META = {
    "scenario": "3-2",
    "step": 0,
    "class_names": ["a", "b", "c"],
    "num_modules": 1,
    "num_classes_per_task": [3],
}
