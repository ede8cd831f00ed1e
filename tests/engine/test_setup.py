"""Step configs: the shared step 0 across scenarios and the per-step-shape rules."""

import os

import pytest

from tests.conftest import REPO_ROOT
from tests.engine.conftest import instant_opts
from ykd.engine import setup_step_cfg
from ykd.engine.setup import step_rule_opts

FT = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")
RULES = [
    [1, ["SOLVER.MAX_ITER", "7", "SOLVER.BASE_LR", "0.1"]],
    [5, ["SOLVER.MAX_ITER", "11"]],
    [100, ["SOLVER.MAX_ITER", "13"]],
]


def _cfg(root, scenario, step, *opts):
    return setup_step_cfg(FT, instant_opts(root) + list(opts), scenario=scenario, step=step)


def test_scenarios_with_the_same_step0_classes_share_step0(tmp_path):
    dirs = {s: _cfg(str(tmp_path), s, 0).CONTINUAL.STEP0_DIR for s in ("15-5", "15-1", "10-10")}
    assert dirs["15-5"] == dirs["15-1"]
    assert dirs["15-5"] != dirs["10-10"]
    # A later step points at the same folder, whichever scenario it belongs to.
    assert _cfg(str(tmp_path), "15-1", 3).CONTINUAL.STEP0_DIR == dirs["15-5"]


def test_another_class_order_is_another_step0(tmp_path):
    seeded = _cfg(str(tmp_path), "15-5", 0, "CONTINUAL.CLASS_ORDER_SEED", "3")
    assert seeded.CONTINUAL.STEP0_DIR != _cfg(str(tmp_path), "15-5", 0).CONTINUAL.STEP0_DIR


def test_step_rules_pick_the_first_rule_that_fits_the_step():
    assert step_rule_opts(RULES, 1) == ["SOLVER.MAX_ITER", "7", "SOLVER.BASE_LR", "0.1"]
    assert step_rule_opts(RULES, 2) == ["SOLVER.MAX_ITER", "11"]
    assert step_rule_opts(RULES, 5) == ["SOLVER.MAX_ITER", "11"]
    assert step_rule_opts(RULES, 10) == ["SOLVER.MAX_ITER", "13"]
    assert step_rule_opts(RULES[:1], 10) == []
    assert step_rule_opts([], 1) == []


@pytest.mark.parametrize(
    "scenario, step, max_iter", [("15-5", 1, 11), ("15-1", 2, 7), ("10-10", 1, 13), ("19-1", 1, 7)]
)
def test_step_rules_set_the_incremental_schedule(tmp_path, scenario, step, max_iter):
    cfg = _cfg(
        str(tmp_path), scenario, step, "CONTINUAL.INCREMENTAL_OPTS", "[]", "CONTINUAL.STEP_RULES",
        str(RULES),
    )  # fmt: skip
    assert cfg.SOLVER.MAX_ITER == max_iter
    # Step 0 keeps its own schedule.
    assert _cfg(str(tmp_path), scenario, 0, "CONTINUAL.STEP_RULES", str(RULES)).SOLVER.MAX_ITER == 4


def test_incremental_opts_win_over_the_step_rule(tmp_path):
    cfg = _cfg(
        str(tmp_path), "15-1", 1, "CONTINUAL.STEP_RULES", str(RULES),
        "CONTINUAL.INCREMENTAL_OPTS", "['SOLVER.MAX_ITER', '3']",
    )  # fmt: skip
    assert cfg.SOLVER.MAX_ITER == 3 and cfg.SOLVER.BASE_LR == 0.1


@pytest.mark.parametrize("rule", [[1], ["1", ["SOLVER.MAX_ITER", "3"]], [1, ["SOLVER.MAX_ITER"]]])
def test_a_malformed_step_rule_is_a_one_line_error(rule):
    with pytest.raises(ValueError, match="STEP_RULES entry .* is not") as error:
        step_rule_opts([rule], 1)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "scenario, max_iter, steps",
    [("15-5", 400, (300,)), ("10-10", 400, (300,)), ("15-1", 100, (75,))],
)
def test_the_synthetic_schedule_is_shaped_like_mma(tmp_path, scenario, max_iter, steps):
    config = os.path.join(REPO_ROOT, "configs", "synthetic", "dynamic_ykd.yaml")
    opts = ["CONTINUAL.OUTPUT_ROOT", str(tmp_path)]
    cfg = setup_step_cfg(config, opts, scenario=scenario, step=1)
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.BASE_LR) == (max_iter, steps, 0.004)
    step0 = setup_step_cfg(config, opts, scenario=scenario, step=0)
    assert (step0.SOLVER.MAX_ITER, step0.SOLVER.BASE_LR) == (2700, 0.02)


@pytest.mark.parametrize(
    "opts",
    [
        ("CONTINUAL.TEST_SPLIT", "dev", "SYNTHETIC.NUM_DEV", "7"),
        ("MODEL.YKD.TRUNK.LR_FACTOR", "0.0", "MODEL.YKD.TRUNK.FREEZE_NORM", "True"),
    ],
)
def test_the_eval_split_and_the_trunk_options_keep_step0(tmp_path, opts):
    plain = _cfg(str(tmp_path), "15-1", 0).CONTINUAL.STEP0_DIR
    assert _cfg(str(tmp_path), "15-1", 0, *opts).CONTINUAL.STEP0_DIR == plain


def test_an_incremental_seed_keeps_step0_and_has_its_own_folder(tmp_path):
    seeded = ("CONTINUAL.INCREMENTAL_SEED", "2", "SEED", "5")
    step0 = _cfg(str(tmp_path), "15-5", 0, *seeded)
    unseeded = _cfg(str(tmp_path), "15-5", 0, "SEED", "5")
    assert step0.SEED == 5 and step0.CONTINUAL.STEP0_DIR == unseeded.CONTINUAL.STEP0_DIR
    step1 = _cfg(str(tmp_path), "15-5", 1, *seeded)
    assert step1.SEED == 2
    assert step1.OUTPUT_DIR.endswith(os.path.join("15-5", "ft_seed2", "step1"))
    assert _cfg(str(tmp_path), "15-5", 1).OUTPUT_DIR.endswith(os.path.join("15-5", "ft", "step1"))


@pytest.mark.parametrize("thresholds", ["50:95", "50:90"])
def test_the_voc_iou_thresholds_reach_the_evaluator(tmp_path, thresholds):
    from ykd.engine import ContinualTrainer

    cfg = _cfg(str(tmp_path), "15-5", 0, "CONTINUAL.EVAL_VOC_IOU_THRESHOLDS", thresholds)
    evaluator = ContinualTrainer.build_evaluator(cfg, cfg.DATASETS.TEST[0])
    first, last = (int(t) / 100 for t in thresholds.split(":"))
    assert evaluator._voc_iou_thresholds[0] == pytest.approx(first)
    assert evaluator._voc_iou_thresholds[-1] == pytest.approx(last)
