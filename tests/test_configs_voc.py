"""
The VOC/SBD configs give the protocol of the papers' code (docs/parity.md) at every step of the
scenarios 15-5, 19-1, 15-1 and 10-10: the step-0 schedule, the incremental schedule and KD weights
picked by ``CONTINUAL.STEP_RULES`` from the number of classes a step adds, and the test-time and
loss settings. Values are MMA's configs and README written out (fcdl94/MMA@65124ec), not read
from the code under test.
"""

import os

import pytest
from detectron2.modeling import build_model

from tests.conftest import REPO_ROOT
from ykd.engine import setup_step_cfg

VOC = os.path.join(REPO_ROOT, "configs", "voc_sbd")
# (scenario, step t >= 1) -> (MAX_ITER, STEPS, MMA's ROI classification KD weight).
INCREMENTAL = {
    ("15-5", 1): (10000, (7500,), 0.5),
    ("10-10", 1): (10000, (7500,), 0.1),
    ("19-1", 1): (2500, (2000,), 1.0),
    ("15-1", 1): (2500, (2000,), 1.0),
    ("15-1", 5): (2500, (2000,), 1.0),
}
# Incremental LR: MMA's 4e-4; Y-KD's 1e-3 (Dynamic Y-KD's code).
LR = {"ft": 4e-4, "ilod": 4e-4, "faster_ilod": 4e-4, "mma": 4e-4, "mma_plus": 4e-4}
LR.update({"ykd": 1e-3, "dynamic_ykd": 1e-3})


def _cfg(tmp_path, monkeypatch, method, scenario, step):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    opts = ["CONTINUAL.OUTPUT_ROOT", str(tmp_path / "out"), "MODEL.DEVICE", "cpu"]
    return setup_step_cfg(os.path.join(VOC, f"{method}.yaml"), opts, scenario=scenario, step=step)


@pytest.mark.parametrize("method", [*LR, "joint"])
def test_step0_is_mma_first_step(tmp_path, monkeypatch, method):
    cfg = _cfg(tmp_path, monkeypatch, method, "15-5", 0)
    solver = cfg.SOLVER
    assert (solver.BASE_LR, solver.MAX_ITER, tuple(solver.STEPS)) == (0.005, 36000, (20000, 25000))
    assert (solver.IMS_PER_BATCH, solver.GAMMA, solver.MOMENTUM) == (4, 0.1, 0.9)
    assert (solver.WEIGHT_DECAY, solver.WEIGHT_DECAY_BIAS, solver.BIAS_LR_FACTOR) == (1e-4, 0, 2)
    assert (solver.WARMUP_ITERS, solver.WARMUP_METHOD) == (500, "linear")
    assert solver.WARMUP_FACTOR == pytest.approx(1 / 3)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (800,) and cfg.INPUT.MAX_SIZE_TRAIN == 1333
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (800, 1333)
    assert cfg.INPUT.MASK_FORMAT == "bitmask"
    assert cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST == 0.3
    assert cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA == 1.0
    assert cfg.MODEL.RPN.SMOOTH_L1_BETA == pytest.approx(1 / 9)
    assert cfg.CONTINUAL.EVAL_VOC_METRIC


@pytest.mark.parametrize("method", list(LR))
@pytest.mark.parametrize("scenario, step", list(INCREMENTAL))
def test_incremental_schedule_follows_the_classes_a_step_adds(
    tmp_path, monkeypatch, method, scenario, step
):
    cfg = _cfg(tmp_path, monkeypatch, method, scenario, step)
    max_iter, steps, _ = INCREMENTAL[scenario, step]
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS)) == (max_iter, steps)
    assert cfg.SOLVER.BASE_LR == LR[method]
    assert cfg.SOLVER.WARMUP_ITERS == 500


@pytest.mark.parametrize("scenario, step", list(INCREMENTAL))
def test_mma_kd_weights_follow_the_classes_a_step_adds(tmp_path, monkeypatch, scenario, step):
    for method, mask in (("mma", 0.0), ("mma_plus", 0.5)):
        weights = _cfg(tmp_path, monkeypatch, method, scenario, step).MODEL.YKD.KD_WEIGHTS
        assert (weights.CLS, weights.MASK) == (INCREMENTAL[scenario, step][2], mask), method
        assert (weights.BOX, weights.RPN) == (1.0, 1.0)
    # Y-KD keeps its weight 1 at every step.
    for method in ("ykd", "dynamic_ykd"):
        assert _cfg(tmp_path, monkeypatch, method, scenario, step).MODEL.YKD.KD_WEIGHTS.CLS == 1.0


def test_joint_keeps_the_step0_schedule(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch, "joint", "15-1", 3)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (0.005, 36000)


def test_incremental_opts_on_the_command_line_win_over_the_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    opts = ["CONTINUAL.OUTPUT_ROOT", str(tmp_path / "out")]
    opts += ["CONTINUAL.INCREMENTAL_OPTS", "['SOLVER.MAX_ITER', '800']"]
    cfg = setup_step_cfg(os.path.join(VOC, "mma.yaml"), opts, scenario="15-5", step=1)
    assert cfg.SOLVER.MAX_ITER == 800 and cfg.MODEL.YKD.KD_WEIGHTS.CLS == 0.5


def test_the_model_takes_the_loss_and_test_settings(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch, "mma", "15-5", 0)
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    model = build_model(cfg)
    module = model.task_modules[-1]
    predictor = module.roi_heads.box_predictor
    assert predictor.smooth_l1_beta == 1.0 and predictor.test_nms_thresh == 0.3
    assert module.proposal_generator.smooth_l1_beta == pytest.approx(1 / 9)
    # maskrcnn-benchmark's ROIAlign: no half-pixel offset.
    assert not module.roi_heads.pooler.level_poolers[0].aligned


@pytest.mark.parametrize("scenario", ["40-40", "70-10", "40-10"])
def test_coco_mma_kd_weight_for_ten_and_more_new_classes(tmp_path, monkeypatch, scenario):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    opts = ["CONTINUAL.OUTPUT_ROOT", str(tmp_path / "out")]
    coco = os.path.join(REPO_ROOT, "configs", "coco")
    for method in ("mma", "mma_plus"):
        path = os.path.join(coco, f"{method}.yaml")
        cfg = setup_step_cfg(path, opts, scenario=scenario, step=1)
        assert cfg.MODEL.YKD.KD_WEIGHTS.CLS == 0.1
        assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (0.002, 20000)
