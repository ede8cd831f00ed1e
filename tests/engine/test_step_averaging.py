"""The averaging hook's set-up: when it runs, and its config errors before any training."""

import pytest

from ykd.engine import get_ykd_cfg
from ykd.engine.step_averaging import StepAveraging, build_averaging_hook


def _cfg(alpha=0.25, mode="module", step=1, joint=False):
    cfg = get_ykd_cfg()
    cfg.MODEL.YKD.AVERAGING.ALPHA = alpha
    cfg.MODEL.YKD.AVERAGING.MODE = mode
    cfg.CONTINUAL.STEP = step
    cfg.CONTINUAL.JOINT = joint
    return cfg


def test_the_hook_runs_at_incremental_steps_with_a_positive_alpha():
    assert get_ykd_cfg().MODEL.YKD.AVERAGING.MODE == "module"  # today's averaging by default
    for mode in ("module", "official"):
        hook = build_averaging_hook(_cfg(mode=mode))
        assert isinstance(hook, StepAveraging) and hook.alpha == 0.25
    for cfg in (_cfg(alpha=0.0), _cfg(step=0), _cfg(joint=True)):
        assert build_averaging_hook(cfg) is None


@pytest.mark.parametrize(
    "cfg, message",
    [
        (_cfg(alpha=1.5), r"MODEL.YKD.AVERAGING.ALPHA must be in \[0, 1\]"),
        (_cfg(mode="mean"), r"MODEL.YKD.AVERAGING.MODE must be one of \('module', 'official'\)"),
    ],
)
def test_bad_averaging_options_fail_before_training(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_averaging_hook(cfg)
