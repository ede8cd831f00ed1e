"""The distillation terms of a Y-KD step t >= 1: teacher module t-1 against student module t."""

from collections.abc import Callable

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ykd.distillation import build_kd_loss_from_cfg

from .losses import box_kd_loss, mask_kd_loss, rpn_kd_loss
from .rpn import AnchorOutputs
from .task_module import TaskModule

__all__ = ["YKDDistiller"]

MaskLogitsFn = Callable[
    [dict[str, torch.Tensor], list[Boxes], TaskModule, torch.Tensor | None, bool], torch.Tensor
]
"""
(features, boxes, task module, its ROI features of the boxes or None, teacher?) -> (R, K, M, M) mask
logits of the boxes by the student's (teacher? False) or the teacher's (True) mask head.
"""


class YKDDistiller(nn.Module):
    """
    Computes ``loss_kd_rpn``, ``loss_kd_cls``, ``loss_kd_box`` and ``loss_kd_mask`` (DESIGN.md §2
    step 5-6); only terms with a positive weight are computed and returned. The teacher's RPN
    proposes boxes with its test-time settings; the ``num_proposals_topk`` best by objectness are
    kept and ``num_proposals_per_image`` of them sampled at random; teacher and student ROI heads
    then run on the same boxes. Teacher outputs are computed under ``torch.no_grad``.
    """

    @configurable
    def __init__(
        self,
        *,
        kd_cls_loss: nn.Module | None,
        loss_weights: dict[str, float],
        num_proposals_topk: int = 128,
        num_proposals_per_image: int = 64,
        rpn_delta_threshold: float = 0.1,
    ):
        """
        Args:
            kd_cls_loss: ``loss(student_logits (R, K+1), teacher_logits (R, K_old+1)) -> scalar``
                from the KD registry; None when its weight is 0.
            loss_weights: weight of each of "loss_kd_cls", "loss_kd_box", "loss_kd_mask",
                "loss_kd_rpn" (missing = 0).
            num_proposals_topk: teacher proposals kept per image, by objectness.
            num_proposals_per_image: of those, proposals sampled at random per image.
            rpn_delta_threshold: objectness gap above which RPN deltas are distilled.
        """
        super().__init__()
        self.kd_cls_loss = kd_cls_loss
        self.loss_weights = {k: v for k, v in loss_weights.items() if v > 0}
        if "loss_kd_cls" in self.loss_weights and kd_cls_loss is None:
            raise ValueError("A positive loss_kd_cls weight needs a kd_cls_loss")
        self.num_proposals_topk = num_proposals_topk
        self.num_proposals_per_image = num_proposals_per_image
        self.rpn_delta_threshold = rpn_delta_threshold

    @classmethod
    def from_config(cls, cfg):
        weights = cfg.MODEL.YKD.KD_WEIGHTS
        return {
            "kd_cls_loss": build_kd_loss_from_cfg(cfg.MODEL.YKD.KD_CLS)
            if weights.CLS > 0
            else None,
            "loss_weights": {
                "loss_kd_cls": weights.CLS,
                "loss_kd_box": weights.BOX,
                "loss_kd_mask": weights.MASK if cfg.MODEL.MASK_ON else 0.0,
                "loss_kd_rpn": weights.RPN,
            },
            "num_proposals_topk": cfg.MODEL.YKD.KD_PROPOSALS.TOPK,
            "num_proposals_per_image": cfg.MODEL.YKD.KD_PROPOSALS.PER_IMAGE,
            "rpn_delta_threshold": cfg.MODEL.YKD.RPN_KD_DELTA_THRESH,
        }

    @property
    def active(self) -> bool:
        """Whether any term has a positive weight (otherwise the teacher never runs)."""
        return bool(self.loss_weights)

    @property
    def distils_masks(self) -> bool:
        return "loss_kd_mask" in self.loss_weights

    def _sample_boxes(self, proposals: list[Instances]) -> list[Boxes]:
        boxes = []
        for p in proposals:
            best = p.proposal_boxes[: self.num_proposals_topk]
            keep = torch.randperm(len(best), device=best.device)[: self.num_proposals_per_image]
            boxes.append(best[keep])
        return boxes

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        teacher_features: dict[str, torch.Tensor],
        student: TaskModule,
        teacher: TaskModule,
        student_anchor_outputs: AnchorOutputs,
        mask_logits: MaskLogitsFn,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            images: the input images.
            features: the student's (trunk) features.
            teacher_features: the teacher's features (``features`` itself with a shared trunk).
            student, teacher: task modules t and t-1 (the teacher is frozen, in eval mode).
            student_anchor_outputs: the student RPN's :meth:`TaskRPN.predict_anchors` on
                ``features``.
            mask_logits: computes mask logits of given boxes for the student or the teacher.

        Returns:
            dict of weighted losses.
        """
        losses = {}
        with torch.no_grad():
            teacher_anchor_outputs = teacher.proposal_generator.predict_anchors(teacher_features)
        if "loss_kd_rpn" in self.loss_weights:
            (_, s_objectness, s_deltas), (_, t_objectness, t_deltas) = (
                student_anchor_outputs,
                teacher_anchor_outputs,
            )
            losses["loss_kd_rpn"] = rpn_kd_loss(
                torch.cat(s_objectness, dim=1),
                torch.cat(t_objectness, dim=1),
                torch.cat(s_deltas, dim=1),
                torch.cat(t_deltas, dim=1),
                delta_threshold=self.rpn_delta_threshold,
            )
        if not self.loss_weights.keys() & {"loss_kd_cls", "loss_kd_box", "loss_kd_mask"}:
            return self._weighted(losses)

        with torch.no_grad():
            proposals, _ = teacher.proposal_generator(
                images, teacher_features, anchor_outputs=teacher_anchor_outputs
            )
            boxes = self._sample_boxes(proposals)
            (t_logits, t_deltas), t_roi_features = teacher.roi_heads.forward_on_boxes(
                teacher_features, boxes
            )
        (s_logits, s_deltas), s_roi_features = student.roi_heads.forward_on_boxes(features, boxes)
        if "loss_kd_cls" in self.loss_weights:
            losses["loss_kd_cls"] = self.kd_cls_loss(
                s_logits, t_logits, num_rois_per_image=[len(b) for b in boxes]
            )
        if "loss_kd_box" in self.loss_weights:
            losses["loss_kd_box"] = box_kd_loss(s_deltas, t_deltas)
        if self.distils_masks:
            with torch.no_grad():
                t_masks = mask_logits(teacher_features, boxes, teacher, t_roi_features, True)
            s_masks = mask_logits(features, boxes, student, s_roi_features, False)
            losses["loss_kd_mask"] = mask_kd_loss(s_masks, t_masks)
        return self._weighted(losses)

    def _weighted(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v * self.loss_weights[k] for k, v in losses.items()}
