"""Fixtures of the Y-KD model tests."""

import pytest
import torch

from tests.modeling.tiny_model import tiny_cfg, tiny_inputs


@pytest.fixture(autouse=True)
def _no_mkldnn():
    """oneDNN builds kernels for every new input shape: seconds per step on busy, tiny CPUs."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture
def make_cfg():
    return tiny_cfg


@pytest.fixture
def make_inputs():
    return tiny_inputs
