"""The RPN of a task module, with its per-anchor outputs available to distillation."""

import torch
from detectron2.modeling.proposal_generator import PROPOSAL_GENERATOR_REGISTRY, RPN
from detectron2.structures import Boxes

__all__ = ["TaskRPN", "AnchorOutputs"]

AnchorOutputs = tuple[list[Boxes], list[torch.Tensor], list[torch.Tensor]]
"""Per level: anchors (Boxes of Hi*Wi*A), objectness logits (N, Hi*Wi*A), deltas (N, Hi*Wi*A, 4)."""


@PROPOSAL_GENERATOR_REGISTRY.register()
class TaskRPN(RPN):
    """
    Detectron2's :class:`RPN` split in two: :meth:`predict_anchors` runs the head, :meth:`forward`
    turns its outputs into proposals and losses. Distillation compares the student's and the
    teacher's anchor outputs without running the student's head twice.
    """

    def predict_anchors(self, features: dict[str, torch.Tensor]) -> AnchorOutputs:
        """
        Args:
            features: feature maps by name, (N, C, Hi, Wi).

        Returns:
            AnchorOutputs: anchors, objectness logits and anchor deltas of every level.
        """
        features = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(features)
        objectness, deltas = self.rpn_head(features)
        objectness = [score.permute(0, 2, 3, 1).flatten(1) for score in objectness]
        box_dim = self.anchor_generator.box_dim
        deltas = [
            x.view(x.shape[0], -1, box_dim, x.shape[-2], x.shape[-1])
            .permute(0, 3, 4, 1, 2)
            .flatten(1, -2)
            for x in deltas
        ]
        return anchors, objectness, deltas

    def forward(
        self, images, features, gt_instances=None, *, anchor_outputs: AnchorOutputs | None = None
    ):
        """
        As :meth:`RPN.forward`; ``anchor_outputs`` (from :meth:`predict_anchors` on the same
        features) avoids running the head again.
        """
        anchors, objectness, deltas = anchor_outputs or self.predict_anchors(features)
        losses = {}
        if self.training:
            assert gt_instances is not None, "RPN requires gt_instances in training!"
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, objectness, gt_labels, deltas, gt_boxes)
        proposals = self.predict_proposals(anchors, objectness, deltas, images.image_sizes)
        return proposals, losses
