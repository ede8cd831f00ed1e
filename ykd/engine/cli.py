"""
The error behaviour of ``tools/*.py``: a user error (bad scenario, step or method, missing data or
checkpoint, a checkpoint of another step, no GPU for a ``cuda`` config) prints its one-line message
alone on stderr and exits with status 2; ``--debug`` shows its traceback. Any other exception is a
bug and keeps its traceback.
"""

import sys
from collections.abc import Callable
from typing import TypeVar

import torch

from ..checkpoint.growing import CheckpointMismatchError
from ..data.scenarios import ScenarioError
from ..data.validation import DatasetValidationError

__all__ = [
    "USER_ERRORS",
    "USER_ERROR_EXIT_CODE",
    "DeviceUnavailableError",
    "check_device",
    "run_cli",
]

USER_ERROR_EXIT_CODE = 2
"""The exit status of a user error (as argparse's for a bad command line)."""

T = TypeVar("T")


class DeviceUnavailableError(RuntimeError):
    """The config's ``MODEL.DEVICE`` does not exist on this machine."""


class UsageError(Exception):
    """A tool's input is wrong (e.g. checkpoints that cannot be averaged); the message says how."""


USER_ERRORS = (
    UsageError,
    ScenarioError,
    DatasetValidationError,
    CheckpointMismatchError,
    DeviceUnavailableError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
)
"""Exceptions whose message says the cause and the fix: printed alone, without a traceback."""


def check_device(device: str) -> None:
    """
    Raise :class:`DeviceUnavailableError` (one line, with the fix) when ``device`` (e.g.
    ``MODEL.DEVICE``) is a CUDA device and this machine has no usable GPU, before anything is
    built on it.
    """
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"MODEL.DEVICE is {device!r} but no CUDA GPU is available on this machine: run on a"
            " machine with a GPU, or add 'MODEL.DEVICE cpu' to the command line (the configs of"
            " configs/synthetic/ are made for CPUs)."
        )


def run_cli(main: Callable[[], T], *, debug: bool = False) -> T:
    """
    ``main()``; a :data:`USER_ERRORS` exception prints its message alone on stderr and exits with
    :data:`USER_ERROR_EXIT_CODE` (with ``debug``, it propagates with its traceback).
    """
    try:
        return main()
    except USER_ERRORS as error:
        if debug:
            raise
        print(error, file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT_CODE) from None
