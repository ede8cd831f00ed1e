"""
Box ROI heads of a task module (FPN and C4). They have no mask head: the model's mask head is
unique and shared by all task modules (DESIGN.md §2).
"""

import torch
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads, StandardROIHeads
from detectron2.structures import Boxes

from .fast_rcnn import TaskFastRCNNOutputLayers

__all__ = ["TaskStandardROIHeads", "TaskRes5ROIHeads"]


def _num_old_classes(cfg) -> int:
    return sum(cfg.MODEL.YKD.NUM_CLASSES_PER_TASK[:-1])


@ROI_HEADS_REGISTRY.register()
class TaskStandardROIHeads(StandardROIHeads):
    """
    :class:`StandardROIHeads` (FPN) with a :class:`TaskFastRCNNOutputLayers` predictor and no mask
    branch. Old classes are those of all tasks but the last of ``MODEL.YKD.NUM_CLASSES_PER_TASK``.
    """

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        ret["box_predictor"] = TaskFastRCNNOutputLayers(
            cfg, ret["box_head"].output_shape, num_old_classes=_num_old_classes(cfg)
        )
        return ret

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        return {}

    def forward_on_boxes(
        self, features: dict[str, torch.Tensor], boxes: list[Boxes]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], None]:
        """
        Box predictions on given boxes.

        Args:
            features: feature maps by name.
            boxes: per image, the Ri boxes to classify.

        Returns:
            ((R, K+1) class logits, (R, K*4) deltas), and None (no per-ROI features are shared
            with the mask head in FPN models).
        """
        x = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        return self.box_predictor(self.box_head(x)), None


@ROI_HEADS_REGISTRY.register()
class TaskRes5ROIHeads(Res5ROIHeads):
    """
    :class:`Res5ROIHeads` (C4) with a :class:`TaskFastRCNNOutputLayers` predictor and no mask head.
    Training returns the sampled proposals (for the unique mask head) with the losses.
    """

    @classmethod
    def from_config(cls, cfg, input_shape):
        box_cfg = cfg.clone()
        box_cfg.defrost()
        box_cfg.MODEL.MASK_ON = False
        ret = super().from_config(box_cfg, input_shape)
        ret["box_predictor"] = TaskFastRCNNOutputLayers(
            cfg, ret["box_predictor"].cls_score.in_features, num_old_classes=_num_old_classes(cfg)
        )
        return ret

    def roi_features(self, features: dict[str, torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """(R, C, S, S) res5 features of the given boxes (shared by the box and mask branches)."""
        return self._shared_roi_transform([features[f] for f in self.in_features], boxes)

    def forward_on_boxes(
        self, features: dict[str, torch.Tensor], boxes: list[Boxes]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """
        Box predictions on given boxes.

        Returns:
            ((R, K+1) class logits, (R, K*4) deltas), and the (R, C, S, S) res5 features, which
            the mask head reuses.
        """
        x = self.roi_features(features, boxes)
        return self.box_predictor(x.mean(dim=[2, 3])), x

    def forward(self, images, features, proposals, targets=None):
        """
        As :meth:`Res5ROIHeads.forward`, but training returns the sampled proposals (with their
        ``gt_*`` fields) instead of an empty list.
        """
        if not self.training:
            return super().forward(images, features, proposals)
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        predictions, _ = self.forward_on_boxes(features, [p.proposal_boxes for p in proposals])
        return proposals, self.box_predictor.losses(predictions, proposals)
