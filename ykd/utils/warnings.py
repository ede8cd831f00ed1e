"""
Known warnings of the libraries under `ykd` that say nothing about a run, and how to silence them.

Detectron2 0.7 and fvcore predate NumPy 2 and torch 2.14: every run of a tool prints that
``torch.jit.script`` is deprecated, that ``torch.meshgrid`` wants an ``indexing`` argument, and more
(:data:`UPSTREAM_WARNINGS` lists each with where it comes from). None of them can be fixed here.
:func:`filter_upstream_warnings` hides exactly those: each filter matches the warning's category,
the start of its message and the module the warning is attributed to, so a warning of `ykd`'s own
code, or another warning of the same library, stays visible. The test suite applies the same
filters from ``pyproject.toml`` (``[tool.pytest.ini_options] filterwarnings``, which must list
the same entries: ``tests/utils/test_warnings.py`` compares them).
"""

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "UPSTREAM_LOG_MESSAGES",
    "UPSTREAM_WARNINGS",
    "UpstreamWarning",
    "filter_upstream_warnings",
    "upstream_warnings_hidden",
]


class UpstreamWarning(NamedTuple):
    """One known warning: ``warnings.filterwarnings("ignore", message, category, module)``."""

    category: type[Warning]
    message: str
    """Regular expression matched at the start of the warning's message (no ``:``, which ends
    a field of pytest's ``filterwarnings``; ``.`` stands for it and for quotes)."""
    module: str
    """Regular expression matched at the start of the module the warning is attributed to."""


UPSTREAM_WARNINGS: tuple[UpstreamWarning, ...] = (
    # fvcore scripts its focal losses at import (through Detectron2's RetinaNet imports).
    UpstreamWarning(FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\._script"),
    # Detectron2's anchor generator calls torch.meshgrid without ``indexing``.
    UpstreamWarning(UserWarning, r"torch\.meshgrid. in an upcoming release", r"torch\.functional"),
    # pycocotools and Detectron2's COCO evaluator with NumPy 2 (``np.array(x, copy=False)``).
    UpstreamWarning(
        DeprecationWarning,
        r"__array__ implementation doesn.t accept a copy keyword",
        r"pycocotools",
    ),
    UpstreamWarning(
        DeprecationWarning,
        r"__array__ implementation doesn.t accept a copy keyword",
        r"detectron2\.evaluation\.coco_evaluation",
    ),
    # Detectron2's COCO evaluator calls the deprecated ``Logger.warn``.
    UpstreamWarning(
        DeprecationWarning,
        r"The .warn. method is deprecated",
        r"detectron2\.evaluation\.coco_evaluation",
    ),
    # Detectron2's training mapper turns a resized (read-only, from PIL) mask into a tensor.
    UpstreamWarning(
        UserWarning,
        r"The given NumPy array is not writable",
        r"detectron2\.data\.detection_utils",
    ),
    # torch's own ``mkldnn.flags()`` context manager, on a build without Intel GPU support.
    UpstreamWarning(UserWarning, r"TF32 acceleration on top of oneDNN", r"torch\.backends\.mkldnn"),
)
"""The known upstream warnings, each with the module it is attributed to."""

UPSTREAM_LOG_MESSAGES: dict[str, str] = {
    # Detectron2's ``is_fx_tracing`` asks torch.fx on every ROI pooling call; logged once.
    "torch.fx._symbolic_trace": "is_fx_tracing will return true for both",
    # Detectron2's environment report imports torch.utils.cpp_extension on a machine without CUDA.
    "torch.utils.cpp_extension": "No CUDA runtime is found",
}
"""Known upstream log records: logger name -> start of the message."""


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _ignore_upstream_warnings() -> None:
    for known in UPSTREAM_WARNINGS:
        warnings.filterwarnings(
            "ignore", message=known.message, category=known.category, module=known.module
        )


@contextlib.contextmanager
def upstream_warnings_hidden() -> Iterator[None]:
    """
    Hide the warnings of :data:`UPSTREAM_WARNINGS` inside the ``with`` block only; the filters are
    restored on exit. For imports: ``with upstream_warnings_hidden(): import detectron2.modeling``
    keeps fvcore's import-time warning out of a program without changing its filters.
    """
    with warnings.catch_warnings():
        _ignore_upstream_warnings()
        yield


def filter_upstream_warnings() -> None:
    """
    Hide the warnings of :data:`UPSTREAM_WARNINGS` and the log records of
    :data:`UPSTREAM_LOG_MESSAGES` in this process (idempotent). Call it first thing in a tool: a
    warning raised before the call (e.g. while importing Detectron2) has been printed already.
    """
    _ignore_upstream_warnings()
    for name, prefix in UPSTREAM_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
