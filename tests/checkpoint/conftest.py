"""Fixtures of the checkpoint tests: those of the Y-KD model tests (tiny configs and inputs)."""

from tests.modeling.conftest import _no_mkldnn, make_cfg, make_inputs  # noqa: F401
