"""
The protocol of the feature distillers of ``FEATURE_KD_REGISTRY``: what a detector's distiller hands
them (:class:`FeatureKDInputs`) and what each registered class tells it (:class:`FeatureDistiller`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = ["FeatureDistiller", "FeatureKDInputs"]


@dataclass(frozen=True)
class FeatureKDInputs:
    """
    What a feature distiller may read at one training iteration. The trunk fields are always set;
    the ROI fields are set when some distiller has ``needs_rois`` (else None).
    """

    student_trunk: Mapping[str, Tensor]
    """Per trunk output (e.g. "p2".."p6", "res4"), the student's (N, C, H, W) features, with graph."""
    teacher_trunk: Mapping[str, Tensor]
    """The teacher's features of the same outputs (its own trunk's, or the student's when shared)."""
    shared_teacher: bool
    """Whether the teacher runs on the student's trunk (then the two trunk fields are the same)."""
    student_hidden: Tensor | None = None
    """(R, Ds) the student box predictor's input on the R distillation boxes."""
    teacher_hidden: Tensor | None = None
    """(R, Dt) the teacher's, on the same boxes."""
    student_logits: Tensor | None = None
    """(R, Ks) the student's class logits [old..., new..., bg] on the boxes."""
    teacher_logits: Tensor | None = None
    """(R, Kt) the teacher's class logits [old..., bg]."""
    student_head: Callable[[Tensor], Tensor] | None = None
    """(R, Ds) -> (R, Ks): the student's (trainable) classifier."""
    teacher_head: Callable[[Tensor], Tensor] | None = None
    """(R, Dt) -> (R, Kt): the teacher's classifier, frozen by the caller."""


class FeatureDistiller(nn.Module):
    """
    Base of the registered feature distillers. A subclass sets the class attributes below, and
    implements :meth:`enabled`, :meth:`from_config` and :meth:`distil`; its ``forward`` may take
    plain tensors (:meth:`distil` unpacks :class:`FeatureKDInputs` for it).
    """

    config_node: ClassVar[str]
    """Its config node under ``MODEL.YKD`` (e.g. "INTERACTIVE")."""
    loss_names: tuple[str, ...]
    """The names of the losses :meth:`distil` returns (a class or instance attribute)."""
    needs_rois: ClassVar[bool] = False
    """Whether it reads the distillation boxes' ROI fields of :class:`FeatureKDInputs`."""
    needs_separate_teacher: ClassVar[bool] = False
    """Whether it compares trunk features, which a shared trunk makes identical."""

    @classmethod
    def enabled(cls, node: Mapping[str, Any]) -> bool:
        """Whether its config node turns it on (e.g. a positive weight)."""
        raise NotImplementedError

    @classmethod
    def from_config(
        cls, node: Mapping[str, Any], *, student_dim: int, teacher_dim: int
    ) -> dict[str, Any]:
        """
        Keyword arguments of ``__init__`` from its config node.

        Args:
            student_dim, teacher_dim: Ds and Dt, the widths of the box predictors' inputs.
        """
        raise NotImplementedError

    def distil(self, inputs: FeatureKDInputs) -> dict[str, Tensor]:
        """The weighted losses (scalars) of one iteration."""
        raise NotImplementedError
