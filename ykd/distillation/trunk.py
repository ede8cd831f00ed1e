"""
Faster-ILOD's feature distillation on the trunk (Peng et al., "Faster ILOD: Incremental Learning for
Object Detectors based on Faster RCNN", PRL 2020; MMA's ``--feat std``): per trunk output, both
feature maps are centred by their mean over all their elements, and the student is pulled up where
the teacher's centred feature exceeds its own,

    L = w sum_l mean(max((F_T,l - mean F_T,l) - (F_S,l - mean F_S,l), 0))

(``normalized_filtered_l1`` in Faster-ILOD's and MMA's distillation code: the sum over the outputs,
the mean over batch, channels and positions). The teacher's features are detached: only the student
learns.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .feature_kd import FeatureDistiller, FeatureKDInputs
from .registry import FEATURE_KD_REGISTRY

__all__ = ["FasterILODFeatureKD", "filtered_l1_feature_loss"]


def filtered_l1_feature_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """
    Faster-ILOD's normalised filtered L1 of one feature map: mean(max(t - mean t - (s - mean s), 0)).

    Args:
        student: (N, C, H, W) the student's features (any shape, the same as ``teacher``).
        teacher: the teacher's, detached here.

    Returns:
        A scalar in at least fp32 (0 with a graph for empty maps).
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"trunk KD: student features {tuple(student.shape)} and teacher features "
            f"{tuple(teacher.shape)} differ; the two trunks must have the same architecture"
        )
    s = student.float() if student.dtype in (torch.float16, torch.bfloat16) else student
    t = teacher.detach().to(s.dtype)
    if s.numel() == 0:
        return s.sum()
    return ((t - t.mean()) - (s - s.mean())).clamp(min=0).mean()


@FEATURE_KD_REGISTRY.register("faster_ilod")
class FasterILODFeatureKD(FeatureDistiller):
    """
    ``loss_kd_feat``: :func:`filtered_l1_feature_loss` summed over the chosen trunk outputs, times
    ``weight``. No parameters of its own. Config: ``MODEL.YKD.TRUNK_KD`` (WEIGHT > 0 turns it on,
    IN_FEATURES); it needs a separate teacher (``MODEL.YKD.TEACHER "separate"``).
    """

    config_node = "TRUNK_KD"
    loss_names = ("loss_kd_feat",)
    needs_separate_teacher = True

    def __init__(self, *, weight: float, in_features: Sequence[str] = ()) -> None:
        """
        Args:
            weight: w > 0.
            in_features: the trunk outputs compared (e.g. ["res4"]); empty: all of them.
        """
        super().__init__()
        if not weight > 0:
            raise ValueError(f"FasterILODFeatureKD: weight must be > 0, got {weight}")
        self.weight = float(weight)
        self.in_features = tuple(in_features)

    @classmethod
    def enabled(cls, node: Mapping[str, Any]) -> bool:
        return node["WEIGHT"] > 0

    @classmethod
    def from_config(
        cls, node: Mapping[str, Any], *, student_dim: int, teacher_dim: int
    ) -> dict[str, Any]:
        return {"weight": node["WEIGHT"], "in_features": list(node["IN_FEATURES"])}

    def forward(
        self, student_features: Mapping[str, Tensor], teacher_features: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """
        Args:
            student_features: per trunk output, the student's (N, C, H, W) features.
            teacher_features: the teacher's, with the same keys and shapes.

        Returns:
            ``{"loss_kd_feat": weighted scalar}``.
        """
        names = self.in_features or tuple(student_features)
        missing = [n for n in names if n not in student_features or n not in teacher_features]
        if missing:
            raise KeyError(
                f"trunk KD: no trunk output {missing} (have {sorted(student_features)}); "
                "fix MODEL.YKD.TRUNK_KD.IN_FEATURES"
            )
        total = sum(
            filtered_l1_feature_loss(student_features[n], teacher_features[n]) for n in names
        )
        return {"loss_kd_feat": total * self.weight}

    def distil(self, inputs: FeatureKDInputs) -> dict[str, Tensor]:
        return self(inputs.student_trunk, inputs.teacher_trunk)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, in_features={list(self.in_features)}"
