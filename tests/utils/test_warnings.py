"""The known upstream warnings are hidden, from their own modules only; pytest hides the same."""

import logging
import warnings

import pytest

from ykd.utils.warnings import (
    UPSTREAM_LOG_MESSAGES,
    UPSTREAM_WARNINGS,
    filter_upstream_warnings,
    upstream_warnings_hidden,
)

# The messages as the libraries print them (copied from a run's output), with a module each
# warning is attributed to there.
PRINTED = [
    (
        FutureWarning,
        "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`.",
        "torch.jit._script",
    ),
    (
        UserWarning,
        "torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
        "torch.functional",
    ),
    (
        DeprecationWarning,
        "__array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
        "pycocotools.mask",
    ),
    (
        DeprecationWarning,
        "__array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
        "detectron2.evaluation.coco_evaluation",
    ),
    (
        DeprecationWarning,
        "The 'warn' method is deprecated, use 'warning' instead",
        "detectron2.evaluation.coco_evaluation",
    ),
    (
        UserWarning,
        "The given NumPy array is not writable, and PyTorch does not support non-writable tensors.",
        "detectron2.data.detection_utils",
    ),
    (
        UserWarning,
        "TF32 acceleration on top of oneDNN is available for Intel GPUs.",
        "torch.backends.mkldnn",
    ),
]


def _shown(category, message, module) -> list[str]:
    """The messages shown when ``module`` warns ``message`` after :func:`filter_upstream_warnings`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_upstream_warnings()
        warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("category, message, module", PRINTED)
def test_known_upstream_warning_is_hidden(category, message, module):
    assert _shown(category, message, module) == []


@pytest.mark.parametrize("category, message, module", PRINTED)
def test_same_message_from_ykd_stays_visible(category, message, module):
    assert _shown(category, message, "ykd.modeling.rpn") == [message]


@pytest.mark.parametrize("category, message, module", PRINTED)
def test_other_message_of_the_same_module_stays_visible(category, message, module):
    other = "ROIAlign got boxes outside the image"
    assert _shown(category, other, module) == [other]


def test_every_filter_hides_a_printed_warning():
    hidden = {
        (category, message, module)
        for category, message, module in PRINTED
        if _shown(category, message, module) == []
    }
    assert len(hidden) == len(PRINTED) == len(UPSTREAM_WARNINGS)


def test_hidden_inside_the_block_only():
    category, message, module = PRINTED[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with upstream_warnings_hidden():
            warnings.warn_explicit(message, category, "a.py", 1, module=module)
        warnings.warn_explicit(message, category, "a.py", 2, module=module)
    assert [w.lineno for w in caught] == [2]


def test_pytest_config_lists_the_same_filters(pytestconfig):
    entries = pytestconfig.getini("filterwarnings")  # pyproject.toml's, as pytest applies them
    expected = [f"ignore:{w.message}:{w.category.__name__}:{w.module}" for w in UPSTREAM_WARNINGS]
    assert entries == expected


@pytest.fixture
def restored_log_filters():
    loggers = [logging.getLogger(name) for name in UPSTREAM_LOG_MESSAGES]
    before = [list(logger.filters) for logger in loggers]
    yield
    for logger, filters in zip(loggers, before, strict=True):
        logger.filters[:] = filters


@pytest.mark.usefixtures("restored_log_filters")
def test_known_upstream_log_records_are_dropped_others_kept():
    filter_upstream_warnings()
    filter_upstream_warnings()  # a second call adds nothing
    for name, prefix in UPSTREAM_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        assert len(logger.filters) == 1
        known = logger.makeRecord(name, logging.WARNING, "f.py", 1, prefix + " (...)", (), None)
        other = logger.makeRecord(name, logging.WARNING, "f.py", 1, "Something else", (), None)
        assert not logger.filter(known)
        assert logger.filter(other)
