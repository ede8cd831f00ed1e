r"""
Checkpoint averaging at the end of every incremental step (``MODEL.YKD.AVERAGING.ALPHA``,
``docs/method.md``): θ = α·θ_{t-1} + (1-α)·θ_t on task module t and the mask head
(:func:`ykd.checkpoint.step_average`), written next to the raw model and evaluated as well.
"""

import logging
import os

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..checkpoint import step_average
from ..utils import torch_save_atomic
from .results import mask_ap_summary
from .setup import previous_step_checkpoint

logger = logging.getLogger(__name__)

AVERAGED_NAME = "model_averaged"
"""The averaged model is ``<step>/model_averaged.pth``; its evaluation ``<step>/eval_model_averaged/``."""


def averaged_eval_dir(step_dir: str) -> str:
    """The folder of the averaged model's evaluation (``eval.json``) of the step in ``step_dir``."""
    return os.path.join(step_dir, f"eval_{AVERAGED_NAME}")


class StepAveraging(HookBase):
    """
    After the last iteration of step t >= 1 (once ``model_final.pth`` is written), average it with
    step t-1's model with weight ``alpha`` on the latter, save ``model_averaged.pth`` and evaluate
    it into ``eval_model_averaged/``. The raw model stays the step's model (the next step starts
    from it); the averaged one is a second result of the step.
    """

    def __init__(self, cfg, alpha: float):
        self.cfg = cfg
        self.alpha = alpha

    def after_train(self):
        if self.trainer.iter + 1 < self.trainer.max_iter:
            return  # interrupted: model_final.pth was not written
        cfg = self.cfg
        path = os.path.join(cfg.OUTPUT_DIR, f"{AVERAGED_NAME}.pth")
        if comm.is_main_process():
            current = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
            averaged = step_average(
                previous_step_checkpoint(cfg), current, cfg.CONTINUAL.STEP, self.alpha
            )
            torch_save_atomic(averaged, path)
        comm.synchronize()
        model = self.trainer.build_model(cfg)
        self.trainer.build_checkpointer(cfg, model).load(path)
        results = self.trainer.test_into(cfg, model, averaged_eval_dir(cfg.OUTPUT_DIR))
        logger.info(
            f"Averaged model (α = {self.alpha:g}): {path}; mask AP {mask_ap_summary(results)}"
        )


def build_averaging_hook(cfg) -> StepAveraging | None:
    """The :class:`StepAveraging` hook of an incremental step when ``MODEL.YKD.AVERAGING.ALPHA`` > 0."""
    alpha = cfg.MODEL.YKD.AVERAGING.ALPHA
    if not 0 <= alpha <= 1:
        raise ValueError(f"MODEL.YKD.AVERAGING.ALPHA must be in [0, 1], got {alpha}")
    if alpha == 0 or cfg.CONTINUAL.STEP == 0 or cfg.CONTINUAL.JOINT:
        return None
    return StepAveraging(cfg, alpha)
