"""The loss-weight stage schedule: stage boundaries, switching in a training loop, resuming."""

import pytest
from detectron2.engine import TrainerBase
from torch import nn

from ykd.engine import get_ykd_cfg
from ykd.engine.stage_schedule import StageSchedule, build_stage_schedule_hook, stage_ends

KD_ONLY = {"loss": 0.0, "loss_kd": 1.0}
SUPERVISED = {"loss_kd": 0.0}
STAGES = [[0.2, KD_ONLY], [0.3, SUPERVISED], [0.5, {}]]


class RecordingModel(nn.Module):
    """Stands for YKDRCNN: records the loss weights it is given."""

    def __init__(self):
        super().__init__()
        self.loss_weights = None
        self.calls = 0

    def set_loss_weights(self, weights):
        self.loss_weights = dict(weights)
        self.calls += 1


class LoopTrainer(TrainerBase):
    """Detectron2's training loop; each step records the model's loss weights at that iteration."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seen = {}

    def run_step(self):
        self.seen[self.iter] = self.model.loss_weights


def stage_cfg(stages=STAGES, max_iter=10, step=1):
    cfg = get_ykd_cfg()
    cfg.MODEL.YKD.STAGES = stages
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.CONTINUAL.STEP = step
    return cfg


def train(hook, start_iter, max_iter):
    trainer = LoopTrainer(RecordingModel())
    trainer.register_hooks([hook])
    trainer.train(start_iter, max_iter)
    return trainer


@pytest.mark.parametrize(
    "fractions, max_iter, ends",
    [
        ([0.2, 0.3, 0.5], 10, [2, 5, 10]),
        ([0.2, 0.3, 0.5], 150, [30, 75, 150]),
        ([0.2, 0.3, 0.5], 50, [10, 25, 50]),
        ([0.25, 0.75], 400, [100, 400]),
        ([1 / 3, 1 / 3, 1 / 3], 50, [17, 33, 50]),  # 16.67 and 33.33 rounded
        ([1.0], 7, [7]),
    ],
)
def test_stage_ends(fractions, max_iter, ends):
    assert stage_ends(fractions, max_iter) == ends


@pytest.mark.parametrize("fractions", [[0.5, 0.4], [0.5, 0.6], [0.0, 1.0], [-0.5, 1.5], []])
def test_stage_ends_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions of SOLVER.MAX_ITER"):
        stage_ends(fractions, 10)


def test_stage_at():
    hook = StageSchedule([2, 5, 10], [KD_ONLY, SUPERVISED, {}])
    assert [hook.stage_at(i) for i in range(12)] == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    skipped = StageSchedule([0, 4], [KD_ONLY, {}])  # a stage rounded to no iteration
    assert [skipped.stage_at(i) for i in range(3)] == [1, 1, 1]


def test_hook_switches_weights_at_stage_boundaries():
    trainer = train(build_stage_schedule_hook(stage_cfg()), 0, 10)
    expected = [KD_ONLY] * 2 + [SUPERVISED] * 3 + [{}] * 5
    assert [trainer.seen[i] for i in range(10)] == expected
    assert trainer.model.calls == 3  # set once per stage


@pytest.mark.parametrize("start", [1, 3, 6])
def test_resume_mid_schedule(start):
    """A fresh hook (as after a restart) resumed at ``start`` applies that iteration's stage."""
    trainer = train(build_stage_schedule_hook(stage_cfg()), start, 10)
    expected = ([KD_ONLY] * 2 + [SUPERVISED] * 3 + [{}] * 5)[start:]
    assert [trainer.seen[i] for i in range(start, 10)] == expected


def test_no_hook_at_step0_or_without_stages():
    assert build_stage_schedule_hook(stage_cfg(step=0)) is None
    assert build_stage_schedule_hook(stage_cfg(stages=[])) is None


def test_bad_stage_entries():
    with pytest.raises(ValueError, match=r"MODEL.YKD.STAGES\[1\]"):
        build_stage_schedule_hook(stage_cfg([[0.5, {}], [0.5]]))
    with pytest.raises(ValueError, match="must be a number >= 0"):
        build_stage_schedule_hook(stage_cfg([[1.0, {"loss": -1.0}]]))
    with pytest.raises(ValueError, match="non-decreasing"):
        StageSchedule([5, 2], [{}, {}])


def test_model_without_loss_weights_api():
    trainer = LoopTrainer(nn.Linear(1, 1))
    trainer.register_hooks([StageSchedule([1], [{}])])
    with pytest.raises(TypeError, match="set_loss_weights"):
        trainer.train(0, 1)
