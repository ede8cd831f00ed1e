"""The unique mask head of Y-KD, shared by all task modules and grown with the classes."""

import copy

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import Res5ROIHeads, StandardROIHeads, build_mask_head
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
from detectron2.structures import Boxes, Instances
from torch import nn

from .class_growth import grown_conv
from .poolers import use_separable_roi_align
from .task_module import TaskModule

__all__ = ["UniqueMaskHead"]


class UniqueMaskHead(nn.Module):
    """
    A Detectron2 mask head (e.g. ``MaskRCNNConvUpsampleHead``) over all seen classes, with the way
    its ROI features are computed: FPN models pool the shared trunk features with their own
    ``pooler``; C4 models (``pooler=None``) take the res5 features of a task module's ROI heads.
    """

    @configurable
    def __init__(
        self,
        *,
        head: nn.Module,
        in_features: list[str],
        pooler: ROIPooler | None,
        class_agnostic: bool = False,
    ):
        """
        Args:
            head: a Detectron2 mask head whose last layer is a 1×1 conv named ``predictor``.
            in_features: feature maps pooled by ``pooler``.
            pooler: ROI pooler (FPN), or None (C4: ROI features come from a task module's res5).
            class_agnostic: whether the head predicts one mask for all classes.
        """
        super().__init__()
        self.head = head
        self.in_features = in_features
        self.pooler = pooler
        self.class_agnostic = class_agnostic

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec], roi_heads: nn.Module):
        """``roi_heads``: the ROI heads of a task module, which tell FPN from C4."""
        ret = {"class_agnostic": cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK}
        if isinstance(roi_heads, Res5ROIHeads):
            resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
            channels = roi_heads.box_predictor.cls_score.in_features
            shape = ShapeSpec(channels=channels, height=resolution, width=resolution)
            ret.update(head=build_mask_head(cfg, shape), in_features=[], pooler=None)
        else:
            mask = StandardROIHeads._init_mask_head(cfg, input_shape)
            ret.update(
                head=mask["mask_head"],
                in_features=mask["mask_in_features"],
                pooler=use_separable_roi_align(mask["mask_pooler"], cfg.MODEL.ROI_ALIGN_BACKWARD),
            )
        return ret

    def roi_features(
        self, features: dict[str, torch.Tensor], boxes: list[Boxes], module: TaskModule
    ) -> torch.Tensor:
        """(R, C, S, S) input of the head for the given boxes (C4: through ``module``'s res5)."""
        if self.pooler is None:
            return module.roi_heads.roi_features(features, boxes)
        return self.pooler([features[f] for f in self.in_features], boxes)

    def logits(self, roi_features: torch.Tensor) -> torch.Tensor:
        """(R, K, M, M) mask logits, or (R, 1, M, M) when class-agnostic."""
        return self.head.layers(roi_features)

    def forward(self, roi_features: torch.Tensor, instances: list[Instances]):
        """Detectron2's mask head call: ``{"loss_mask"}`` in training, ``instances`` otherwise."""
        return self.head(roi_features, instances)

    def losses(self, logits: torch.Tensor, instances: list[Instances]) -> dict[str, torch.Tensor]:
        """
        ``{"loss_mask"}`` of the head's training call, from (R, K, M, M) mask logits of the R
        proposals of ``instances`` (with ``gt_classes`` and ``gt_masks``).
        """
        loss = mask_rcnn_loss(logits, instances, self.head.vis_period)
        return {"loss_mask": loss * self.head.loss_weight}

    def expand_classes(self, num_new_classes: int) -> None:
        """Grow the predictor by ``num_new_classes`` masks (old ones copied), in place."""
        if not self.class_agnostic:
            predictor = self.head.predictor
            self.head.predictor = grown_conv(
                predictor, predictor.out_channels + num_new_classes, std=0.001
            )

    def with_num_classes(self, num_classes: int) -> "UniqueMaskHead":
        """A deep copy that predicts the masks of the first ``num_classes`` classes only."""
        new = copy.deepcopy(self)
        if not self.class_agnostic:
            predictor = new.head.predictor
            new.head.predictor = type(predictor)(predictor.in_channels, num_classes, kernel_size=1)
            new.head.predictor.load_state_dict(
                {k: v[:num_classes] for k, v in predictor.state_dict().items()}
            )
        return new
