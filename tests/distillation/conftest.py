"""Fixtures of the KD loss tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The tests use tiny tensors, for which intra-op threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
