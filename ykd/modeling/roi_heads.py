"""
Box ROI heads of a task module (FPN and C4). They have no mask head: the model's mask head is
unique and shared by all task modules (``docs/method.md``).
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads, StandardROIHeads
from detectron2.structures import Boxes, Instances

from .fast_rcnn import TaskFastRCNNOutputLayers
from .poolers import use_separable_roi_align

__all__ = ["BoxOutputs", "TaskStandardROIHeads", "TaskRes5ROIHeads", "pool_parts"]


def _num_old_classes(cfg) -> int:
    return sum(cfg.MODEL.YKD.NUM_CLASSES_PER_TASK[:-1])


class BoxOutputs(NamedTuple):
    """The box branch of a task module on R given boxes."""

    pooled: torch.Tensor
    """(R, C, S, S) ROI-pooled trunk features."""
    scores: torch.Tensor
    """(R, K+1) class logits."""
    deltas: torch.Tensor
    """(R, K*4) box deltas, (R, 4) if class-agnostic."""
    roi_features: torch.Tensor | None
    """C4: the (R, C5, S5, S5) res5 features (the mask head's input); FPN: None."""
    hidden: torch.Tensor | None = None
    """(R, D) the predictor's input: the box head's output (FPN), res5's spatial mean (C4)."""


def pool_parts(
    pool: Callable[[list[Boxes]], torch.Tensor], parts: list[list[Boxes]]
) -> list[torch.Tensor]:
    """
    ROI-pool several sets of boxes in one call of ``pool``.

    Args:
        pool: per image boxes -> (R, C, S, S) features, images in order.
        parts: P lists of per-image boxes.

    Returns:
        P tensors (R_p, C, S, S), the features of each part's boxes, images in order.
    """
    per_image = list(zip(*parts, strict=True))
    pooled = pool([Boxes.cat(list(boxes)) for boxes in per_image])
    chunks = pooled.split([len(b) for boxes in per_image for b in boxes])
    return [torch.cat(chunks[p :: len(parts)]) for p in range(len(parts))]


class _ExtraBoxesMixin:
    """
    Training of the box branch on sampled proposals and, in the same calls, on extra boxes;
    inference restricted to a range of classes.
    """

    def detect(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        classes: tuple[int, int] | None = None,
    ) -> list[Instances]:
        """
        Inference of the box branch (as the ROI heads' ``forward`` in eval mode) that detects only
        the classes ``start <= c < end`` of ``classes = (start, end)`` (None: all classes).

        Returns:
            Per image, the detections: ``pred_boxes``, ``scores``, ``pred_classes``.
        """
        pooled = self.pool(features, [p.proposal_boxes for p in proposals])
        return self.detect_pooled(pooled, proposals, classes)

    def detect_pooled(
        self,
        pooled: torch.Tensor,
        proposals: list[Instances],
        classes: tuple[int, int] | None = None,
    ) -> list[Instances]:
        """
        :meth:`detect` on the (R, C, S, S) features of the proposals already pooled (R = the
        proposals of all images, in order), e.g. by another module's pooler on the same boxes.
        """
        out = self.predict_pooled(pooled)
        return self.box_predictor.inference((out.scores, out.deltas), proposals, classes)[0]

    def forward_train(
        self,
        images,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances],
        extra_boxes: list[Boxes] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor], BoxOutputs | None]:
        """
        Args:
            images, features, proposals, targets: as for the ROI heads' ``forward``.
            extra_boxes: per image, boxes (e.g. distillation boxes) pooled and predicted in the
                same calls as the sampled proposals; None: a plain ``forward``.

        Returns:
            The sampled proposals (with ``gt_*`` fields), the losses, and the
            :class:`BoxOutputs` of the extra boxes (None without them).
        """
        if extra_boxes is None:
            return (*self(images, features, proposals, targets), None)
        proposals = self.label_and_sample_proposals(proposals, targets)
        sampled = [p.proposal_boxes for p in proposals]
        own, extra = pool_parts(lambda b: self.pool(features, b), [sampled, extra_boxes])
        out = self.predict_pooled(torch.cat([own, extra]))
        n = len(own)
        predictions = (out.scores[:n], out.deltas[:n])
        losses = self.box_predictor.losses(predictions, proposals)
        if getattr(self, "train_on_pred_boxes", False):
            boxes = self.box_predictor.predict_boxes_for_gt_classes(predictions, proposals)
            for p, b in zip(proposals, boxes, strict=True):
                p.proposal_boxes = Boxes(b)
        roi_features = None if out.roi_features is None else out.roi_features[n:]
        return (
            proposals,
            losses,
            BoxOutputs(extra, out.scores[n:], out.deltas[n:], roi_features, out.hidden[n:]),
        )


@ROI_HEADS_REGISTRY.register()
class TaskStandardROIHeads(_ExtraBoxesMixin, StandardROIHeads):
    """
    :class:`StandardROIHeads` (FPN) with a :class:`TaskFastRCNNOutputLayers` predictor and no mask
    branch. Old classes are those of all tasks but the last of ``MODEL.YKD.NUM_CLASSES_PER_TASK``.
    """

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        use_separable_roi_align(ret["box_pooler"], cfg.MODEL.ROI_ALIGN_BACKWARD)
        ret["box_predictor"] = TaskFastRCNNOutputLayers(
            cfg, ret["box_head"].output_shape, num_old_classes=_num_old_classes(cfg)
        )
        return ret

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        return {}

    def pool(self, features: dict[str, torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """(R, C, S, S) ROI-pooled features of the boxes (per image)."""
        return self.box_pooler([features[f] for f in self.box_in_features], boxes)

    def predict_pooled(self, pooled: torch.Tensor) -> BoxOutputs:
        """Box head and predictor on (R, C, S, S) pooled features."""
        hidden = self.box_head(pooled).flatten(1)
        scores, deltas = self.box_predictor(hidden)
        return BoxOutputs(pooled, scores, deltas, None, hidden)


@ROI_HEADS_REGISTRY.register()
class TaskRes5ROIHeads(_ExtraBoxesMixin, Res5ROIHeads):
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
        use_separable_roi_align(ret["pooler"], cfg.MODEL.ROI_ALIGN_BACKWARD)
        ret["box_predictor"] = TaskFastRCNNOutputLayers(
            cfg, ret["box_predictor"].cls_score.in_features, num_old_classes=_num_old_classes(cfg)
        )
        return ret

    def pool(self, features: dict[str, torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """(R, C, S, S) ROI-pooled res4 features of the boxes (per image)."""
        return self.pooler([features[f] for f in self.in_features], boxes)

    def predict_pooled(self, pooled: torch.Tensor) -> BoxOutputs:
        """res5, then the predictor on its spatial mean, on (R, C, S, S) pooled features."""
        x = self.res5(pooled)
        hidden = x.mean(dim=[2, 3])
        scores, deltas = self.box_predictor(hidden)
        return BoxOutputs(pooled, scores, deltas, x, hidden)

    def roi_features(self, features: dict[str, torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """(R, C5, S5, S5) res5 features of the given boxes (the mask head's input)."""
        return self.res5(self.pool(features, boxes))

    def forward(self, images, features, proposals, targets=None):
        """
        As :meth:`Res5ROIHeads.forward`, but training returns the sampled proposals (with their
        ``gt_*`` fields) instead of an empty list.
        """
        if not self.training:
            return super().forward(images, features, proposals)
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        out = self.predict_pooled(self.pool(features, [p.proposal_boxes for p in proposals]))
        return proposals, self.box_predictor.losses((out.scores, out.deltas), proposals)
