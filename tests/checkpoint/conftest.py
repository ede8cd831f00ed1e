"""Fixtures of the checkpoint tests: the tiny model helpers of tests/modeling."""

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "ykd_tests_tiny_model", Path(__file__).parents[1] / "modeling" / "tiny_model.py"
)
tiny_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_model)


@pytest.fixture(autouse=True)
def _no_mkldnn():
    """oneDNN builds kernels for every new input shape: seconds per step on busy, tiny CPUs."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture
def make_cfg():
    return tiny_model.tiny_cfg


@pytest.fixture
def make_inputs():
    return tiny_model.tiny_inputs
