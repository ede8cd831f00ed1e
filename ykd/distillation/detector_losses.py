"""
The registered KD losses of class-incremental detectors: MMA's unbiased KD (``ukd``) and ILOD's logit
L2 (``l2``), thin wrappers of :mod:`ykd.distillation.functional.incremental`.
"""

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from . import functional as KF
from .losses import KDLoss
from .registry import KD_LOSS_REGISTRY

__all__ = ["L2Loss", "UKDLoss"]


@KD_LOSS_REGISTRY.register("ukd")
class UKDLoss(KDLoss):
    """
    MMA's unbiased KD: :func:`~.functional.ukd_loss`. It folds the student's new classes into its
    background itself, so it takes no adapter (ADAPTER must be "" or "none").
    """

    functional = staticmethod(KF.ukd_loss)
    default_adapter = "none"
    adapters = ("none",)


@KD_LOSS_REGISTRY.register("l2")
class L2Loss(KDLoss):
    """
    ILOD's L2 on mean-normalised logits: :func:`~.functional.l2_loss`. Default adapter "slice" (ILOD
    compares the old classes and background). Config: L2.CENTER ("compared": the student's logits
    are centred over the compared columns, after the adapter; "student": over all its columns,
    then sliced, as ILOD's and Faster-ILOD's code).
    """

    functional = staticmethod(KF.l2_loss)
    default_adapter = "slice"

    def __init__(self, *, center: str = "compared", **kwargs: Any) -> None:
        """
        Args:
            center: one of :data:`~.functional.L2_CENTERINGS`; "student" slices by itself and so
                needs the "slice" adapter.
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        if center not in KF.L2_CENTERINGS:
            raise ValueError(f"L2Loss: center must be one of {KF.L2_CENTERINGS}, got {center!r}")
        if center == "student" and self.adapter != "slice":
            raise ValueError(
                f"L2Loss: center='student' centres the student before slicing it, so it needs "
                f"adapter='slice' (or ''), got {self.adapter!r}"
            )
        self.options = {"center": center}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().from_config(cfg), "center": cfg["L2"]["CENTER"]}

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        *,
        targets: Tensor | None = None,
        num_rois_per_image: int | list[int] | None = None,
    ) -> Tensor:
        if self.options["center"] == "compared":
            return super().forward(student_logits, teacher_logits)
        return KF.l2_loss(
            student_logits,
            teacher_logits,
            temperature=self.temperature,
            reduction=self.reduction,
            center="student",
        )
