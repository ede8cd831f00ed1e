"""
Loss-weight stages of an incremental step, e.g. LLaVA-KD's three-stage scheme (Cai et al., "LLaVA-KD:
A Framework of Distilling Multimodal Large Language Models", arXiv 2410.16236): distilled pre-training,
supervised fine-tuning, distilled fine-tuning, here as consecutive parts of one step's iterations with
their own loss weights (``MODEL.YKD.STAGES``).
"""

import bisect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from detectron2.engine import HookBase

from ..modeling.loss_weights import check_loss_weights
from ..utils import unwrap

__all__ = ["StageSchedule", "build_stage_schedule_hook", "stage_ends"]

logger = logging.getLogger(__name__)


def stage_ends(fractions: Sequence[float], max_iter: int) -> list[int]:
    """
    The iteration at which each stage ends (exclusive), for stages lasting ``fractions`` of
    ``max_iter`` iterations: ``round(max_iter * (f_1 + ... + f_k))``, the last one ``max_iter``.
    A stage shorter than half an iteration may get none.

    Example: ``stage_ends([0.2, 0.3, 0.5], 150) == [30, 75, 150]``.

    Raises:
        ValueError: a fraction is not > 0, or they do not sum to 1.
    """
    if not fractions or any(not f > 0 for f in fractions):
        raise ValueError(f"Stage lengths must be fractions of SOLVER.MAX_ITER > 0, got {fractions}")
    if not math.isclose(math.fsum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"Stage lengths are fractions of SOLVER.MAX_ITER and must sum to 1, got {fractions}"
            f" (sum {math.fsum(fractions)})"
        )
    ends, total = [], 0.0
    for fraction in fractions[:-1]:
        total += fraction
        ends.append(round(max_iter * total))
    return [*ends, max_iter]


class StageSchedule(HookBase):
    """
    Before each iteration, gives the model the loss weights of the stage holding ``trainer.iter``
    (through the model's ``set_loss_weights``, e.g. :meth:`YKDRCNN.set_loss_weights`). The stage
    is derived from the iteration alone, so a run resumed mid-step is in the right stage without
    any saved state.
    """

    def __init__(self, ends: Sequence[int], weights: Sequence[Mapping[str, float]]):
        """
        Args:
            ends: per stage, the iteration at which it ends (exclusive), non-decreasing; iterations
                from the last end on stay in the last stage.
            weights: per stage, the loss weights by loss name or prefix (a missing loss: 1).
        """
        if len(ends) != len(weights) or not ends:
            raise ValueError(
                f"{len(ends)} stage ends for {len(weights)} stages; need one per stage"
            )
        if any(b < a for a, b in zip(ends[:-1], ends[1:], strict=True)):
            raise ValueError(f"Stage ends must be non-decreasing, got {list(ends)}")
        self.ends = [int(e) for e in ends]
        self.weights = [check_loss_weights(w) for w in weights]
        self._stage: int | None = None

    def stage_at(self, iteration: int) -> int:
        """The index of the stage that iteration ``iteration`` (0-based) belongs to."""
        return min(bisect.bisect_right(self.ends, iteration), len(self.ends) - 1)

    def before_train(self):
        if not callable(getattr(unwrap(self.trainer.model), "set_loss_weights", None)):
            raise TypeError(
                "MODEL.YKD.STAGES needs a model with set_loss_weights(weights) (e.g. YKDRCNN), got"
                f" {type(unwrap(self.trainer.model)).__name__}"
            )
        self._stage = None

    def before_step(self):
        stage = self.stage_at(self.trainer.iter)
        if stage == self._stage:
            return
        unwrap(self.trainer.model).set_loss_weights(self.weights[stage])
        self._stage = stage
        logger.info(
            f"Iteration {self.trainer.iter}: loss-weight stage {stage + 1}/{len(self.ends)}"
            f" (until iteration {self.ends[stage]}), weights {self.weights[stage]}"
        )


def _parse_stages(stages: Sequence[Any]) -> tuple[list[float], list[Mapping[str, float]]]:
    """The fractions and weights of ``MODEL.YKD.STAGES`` entries ``[fraction, {key: weight}]``."""
    fractions, weights = [], []
    for i, stage in enumerate(stages):
        if not (
            isinstance(stage, (list, tuple)) and len(stage) == 2 and isinstance(stage[1], Mapping)
        ):
            raise ValueError(
                f"MODEL.YKD.STAGES[{i}] must be [fraction of SOLVER.MAX_ITER, {{loss name or"
                f" prefix: weight}}], got {stage!r}"
            )
        fractions.append(float(stage[0]))
        weights.append(dict(stage[1]))
    return fractions, weights


def build_stage_schedule_hook(cfg) -> StageSchedule | None:
    """
    The :class:`StageSchedule` of ``MODEL.YKD.STAGES`` over ``SOLVER.MAX_ITER`` iterations, or
    None when the list is empty or at step 0 (the stages belong to incremental steps: a step 0
    trained with a method's config is plain supervised training).
    """
    stages = cfg.MODEL.YKD.STAGES
    if not stages or cfg.CONTINUAL.STEP == 0:
        return None
    fractions, weights = _parse_stages(stages)
    return StageSchedule(stage_ends(fractions, cfg.SOLVER.MAX_ITER), weights)
