"""Where the evaluation of a step's checkpoint goes (ykd/engine/evaluate.py)."""

import os

import pytest

from tests.engine.conftest import instant_opts
from tests.engine.test_setup import FT
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.engine.evaluate import evaluation_target


def _step_cfg(root, *opts):
    cfg = setup_step_cfg(FT, instant_opts(root) + list(opts), scenario="10-10", step=1)
    os.makedirs(cfg.OUTPUT_DIR)
    for name in ("model_final.pth", "model_averaged.pth"):
        open(os.path.join(cfg.OUTPUT_DIR, name), "wb").close()
    return cfg


def test_test_evaluations_go_to_the_step_folder_and_eval_name(tmp_path):
    cfg = _step_cfg(str(tmp_path))
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    averaged = os.path.join(cfg.OUTPUT_DIR, "model_averaged.pth")
    assert evaluation_target(cfg) == (final, cfg.OUTPUT_DIR)
    assert evaluation_target(cfg, averaged) == (
        averaged,
        os.path.join(cfg.OUTPUT_DIR, "eval_model_averaged"),
    )


def test_dev_evaluations_never_replace_test_ones(tmp_path):
    cfg = _step_cfg(str(tmp_path), "CONTINUAL.TEST_SPLIT", "dev")
    averaged = os.path.join(cfg.OUTPUT_DIR, "model_averaged.pth")
    assert evaluation_target(cfg)[1] == os.path.join(cfg.OUTPUT_DIR, "eval_dev")
    assert evaluation_target(cfg, averaged)[1] == os.path.join(
        cfg.OUTPUT_DIR, "eval_model_averaged_dev"
    )


def test_training_on_the_dev_split_is_refused(tmp_path):
    cfg = setup_step_cfg(FT, instant_opts(str(tmp_path)) + ["CONTINUAL.TEST_SPLIT", "dev"])
    with pytest.raises(ValueError, match="train with CONTINUAL.TEST_SPLIT test"):
        ContinualTrainer(cfg)
