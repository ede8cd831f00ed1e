r"""
Checkpoint averaging of an incremental step t >= 1 with step t-1, θ = α·θ_{t-1} + (1-α)·θ_t, in
the mode of ``MODEL.YKD.AVERAGING.MODE`` (:func:`ykd.checkpoint.step_average`): written next to
the step's raw model and evaluated. One loop serves the hook at the end of every step
(``MODEL.YKD.AVERAGING.ALPHA``) and the α sweep of ``tools/average_checkpoints.py sweep``.
"""

import logging
import os
from collections.abc import Sequence

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..checkpoint.sweep import (
    AVERAGING_MODES,
    alpha_label,
    plot_sweep,
    step_average,
    sweep_record,
    sweep_table,
)
from ..utils import torch_save_atomic, write_json_atomic, write_text_atomic
from .evaluate import evaluate_checkpoint
from .results import mask_ap_summary
from .setup import previous_step_checkpoint

__all__ = [
    "AVERAGED_NAME",
    "StepAveraging",
    "alpha_sweep",
    "averaged_eval_dir",
    "build_averaging_hook",
    "evaluate_step_average",
]

logger = logging.getLogger(__name__)

AVERAGED_NAME = "model_averaged"
"""The averaged model is ``<step>/model_averaged.pth``; its evaluation ``<step>/eval_model_averaged/``."""


def averaged_eval_dir(step_dir: str) -> str:
    """The folder of the averaged model's evaluation (``eval.json``) of the step in ``step_dir``."""
    return os.path.join(step_dir, f"eval_{AVERAGED_NAME}")


def evaluate_step_average(trainer, cfg, alpha: float, path: str, output_folder: str) -> dict:
    """
    Average the step's ``model_final.pth`` with step t-1's (weight ``alpha`` on the latter, mode
    and trunk of ``MODEL.YKD.AVERAGING``), save it to ``path`` (main process, atomically) and
    evaluate it into ``output_folder`` (:func:`~ykd.engine.evaluate.evaluate_checkpoint`).

    Raises:
        FileNotFoundError: a step's checkpoint is missing (the message names the fix).
        ValueError, TypeError: the checkpoints cannot be averaged (one-line message).
    """
    current = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    previous = previous_step_checkpoint(cfg)
    if not os.path.exists(current):
        raise FileNotFoundError(f"No checkpoint {current}: train step {cfg.CONTINUAL.STEP} first")
    if comm.is_main_process():
        averaging = cfg.MODEL.YKD.AVERAGING
        averaged = step_average(
            previous,
            current,
            cfg.CONTINUAL.STEP,
            alpha,
            mode=averaging.MODE,
            trunk=averaging.TRUNK or None,
        )
        torch_save_atomic(averaged, path)
    comm.synchronize()
    return evaluate_checkpoint(trainer, cfg, path, output_folder)


def alpha_sweep(trainer, cfg, alphas: Sequence[float]) -> dict:
    """
    The α sweep of the step of ``cfg``: :func:`evaluate_step_average` for each α into
    ``<step dir>/averaging/`` (``model_alpha<α>.pth``, ``eval_alpha<α>/eval.json``), then
    ``averaging.json`` (:func:`~ykd.checkpoint.sweep.sweep_record`), ``averaging.md`` and
    ``averaging.png``; on the dev split (``CONTINUAL.TEST_SPLIT`` "dev") into
    ``<step dir>/averaging_dev/``. Returns the record.
    """
    dev = cfg.CONTINUAL.TEST_SPLIT == "dev"
    folder = os.path.join(cfg.OUTPUT_DIR, "averaging_dev" if dev else "averaging")
    evaluations, checkpoints = [], []
    for alpha in alphas:
        label = alpha_label(alpha)
        path = os.path.join(folder, f"model_alpha{label}.pth")
        evaluation_folder = os.path.join(folder, f"eval_alpha{label}")
        evaluations.append(evaluate_step_average(trainer, cfg, alpha, path, evaluation_folder))
        checkpoints.append(os.path.relpath(path, cfg.OUTPUT_DIR))
    record = sweep_record(
        alphas,
        evaluations,
        checkpoints,
        scenario=cfg.CONTINUAL.SCENARIO,
        method=cfg.CONTINUAL.METHOD,
        step=cfg.CONTINUAL.STEP,
        mode=cfg.MODEL.YKD.AVERAGING.MODE,
        previous=previous_step_checkpoint(cfg),
        current=os.path.join(cfg.OUTPUT_DIR, "model_final.pth"),
    )
    if comm.is_main_process():
        write_json_atomic(os.path.join(folder, "averaging.json"), record)
        write_text_atomic(os.path.join(folder, "averaging.md"), sweep_table(record))
        plot_sweep(record, os.path.join(folder, "averaging.png"))
    return record


class StepAveraging(HookBase):
    """
    After the last iteration of step t >= 1 (once ``model_final.pth`` is written), average it with
    step t-1's model with weight ``alpha`` on the latter, save ``model_averaged.pth`` and evaluate
    it into ``eval_model_averaged/`` (:func:`evaluate_step_average`). The raw model stays the
    step's model (the next step starts from it); the averaged one is a second result of the step.
    """

    def __init__(self, cfg, alpha: float):
        self.cfg = cfg
        self.alpha = alpha

    def after_train(self):
        if self.trainer.iter + 1 < self.trainer.max_iter:
            return  # interrupted: model_final.pth was not written
        path = os.path.join(self.cfg.OUTPUT_DIR, f"{AVERAGED_NAME}.pth")
        results = evaluate_step_average(
            self.trainer, self.cfg, self.alpha, path, averaged_eval_dir(self.cfg.OUTPUT_DIR)
        )
        logger.info(
            f"Averaged model (α = {self.alpha:g}, {self.cfg.MODEL.YKD.AVERAGING.MODE}): {path};"
            f" mask AP {mask_ap_summary(results)}"
        )


def build_averaging_hook(cfg) -> StepAveraging | None:
    """The :class:`StepAveraging` hook of an incremental step when ``MODEL.YKD.AVERAGING.ALPHA`` > 0."""
    alpha, mode = cfg.MODEL.YKD.AVERAGING.ALPHA, cfg.MODEL.YKD.AVERAGING.MODE
    if not 0 <= alpha <= 1:
        raise ValueError(f"MODEL.YKD.AVERAGING.ALPHA must be in [0, 1], got {alpha}")
    if mode not in AVERAGING_MODES:
        raise ValueError(f"MODEL.YKD.AVERAGING.MODE must be one of {AVERAGING_MODES}, got {mode!r}")
    if alpha == 0 or cfg.CONTINUAL.STEP == 0 or cfg.CONTINUAL.JOINT:
        return None
    return StepAveraging(cfg, alpha)
