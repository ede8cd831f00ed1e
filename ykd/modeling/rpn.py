"""The RPN of a task module, with its per-anchor outputs available to distillation."""

from typing import NamedTuple

import torch
from detectron2.layers import batched_nms
from detectron2.modeling.proposal_generator import PROPOSAL_GENERATOR_REGISTRY, RPN
from detectron2.structures import Boxes, Instances

__all__ = ["TaskRPN", "AnchorOutputs"]


class AnchorOutputs(NamedTuple):
    """The RPN head's outputs on every level i of the feature maps (A anchors per position)."""

    anchors: list[Boxes]
    """Per level, the Hi*Wi*A anchors (the same for every image)."""
    objectness: list[torch.Tensor]
    """Per level, (N, Hi*Wi*A) objectness logits."""
    deltas: list[torch.Tensor]
    """Per level, (N, Hi*Wi*A, B) anchor deltas (B = 4 for horizontal boxes)."""


@PROPOSAL_GENERATOR_REGISTRY.register()
class TaskRPN(RPN):
    """
    Detectron2's :class:`RPN` split in two: :meth:`predict_anchors` runs the head, :meth:`forward`
    turns its outputs into proposals and losses. Distillation compares the student's and the
    teacher's anchor outputs without running the student's head twice.

    In eval mode (inference, and the frozen teacher of distillation) proposals are those of
    Detectron2's ``find_top_rpn_proposals``, computed with less work: only the pre-NMS top-k
    anchors of each level are decoded, and NMS runs on a prefix of the boxes sorted by score,
    grown until it keeps ``post_nms_topk`` boxes (greedy NMS decides each box from higher-scored
    boxes only, so the kept boxes of a prefix are the first kept boxes of the whole list).
    """

    def predict_anchors(
        self, features: dict[str, torch.Tensor], anchors: list[Boxes] | None = None
    ) -> AnchorOutputs:
        """
        Args:
            features: feature maps by name, (N, C, Hi, Wi).
            anchors: the anchors of these feature maps' sizes, if known (another task module's).

        Returns:
            AnchorOutputs: anchors, objectness logits and anchor deltas of every level.
        """
        features = [features[f] for f in self.in_features]
        if anchors is None:
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
        return AnchorOutputs(anchors, objectness, deltas)

    def forward(
        self, images, features, gt_instances=None, *, anchor_outputs: AnchorOutputs | None = None
    ):
        """
        As :meth:`RPN.forward`; ``anchor_outputs`` (from :meth:`predict_anchors` on the same
        features) avoids running the head again.
        """
        if anchor_outputs is None:
            anchor_outputs = self.predict_anchors(features)
        anchors, objectness, deltas = anchor_outputs
        losses = {}
        if self.training:
            assert gt_instances is not None, "RPN requires gt_instances in training!"
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, objectness, gt_labels, deltas, gt_boxes)
        proposals = self.predict_proposals(anchors, objectness, deltas, images.image_sizes)
        return proposals, losses

    def predict_proposals(self, anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes):
        """As :meth:`RPN.predict_proposals` (eval mode: see the class docstring)."""
        if self.training:
            return super().predict_proposals(
                anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes
            )
        with torch.no_grad():
            scores, boxes, levels = [], [], []
            for level, (anchors_i, logits_i, deltas_i) in enumerate(
                zip(anchors, pred_objectness_logits, pred_anchor_deltas, strict=True)
            ):
                topk_scores, topk_idx = logits_i.topk(
                    min(logits_i.shape[1], self.pre_nms_topk[False]), dim=1
                )
                topk_deltas = deltas_i.gather(
                    1, topk_idx[..., None].expand(-1, -1, deltas_i.shape[2])
                )
                topk_anchors = anchors_i.tensor[topk_idx]  # (N, k, 4)
                decoded = self.box2box_transform.apply_deltas(
                    topk_deltas.reshape(-1, topk_deltas.shape[2]), topk_anchors.reshape(-1, 4)
                )
                scores.append(topk_scores)
                boxes.append(decoded.view(topk_scores.shape + (-1,)))
                levels.append(torch.full_like(topk_idx[0], level))
            scores, boxes, levels = torch.cat(scores, 1), torch.cat(boxes, 1), torch.cat(levels)
            return [
                self._top_proposals(Boxes(b), s, levels, size)
                for b, s, size in zip(boxes, scores, image_sizes, strict=True)
            ]

    def _top_proposals(
        self, boxes: Boxes, scores: torch.Tensor, levels: torch.Tensor, image_size
    ) -> Instances:
        """
        One image's proposals, as ``find_top_rpn_proposals`` (test-time settings).

        Args:
            boxes: the (B,) decoded pre-NMS top-k boxes of all levels.
            scores: (B,) their objectness logits.
            levels: (B,) their level index.
        """
        valid = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
        boxes.clip(image_size)
        keep = valid & boxes.nonempty(threshold=self.min_box_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        order = scores.argsort(descending=True)
        post_nms_topk = self.post_nms_topk[False]
        prefix = 2 * post_nms_topk
        while True:
            candidates = order[:prefix]
            kept = batched_nms(
                boxes.tensor[candidates], scores[candidates], levels[candidates], self.nms_thresh
            )
            if len(kept) >= post_nms_topk or prefix >= len(order):
                break
            prefix *= 4
        kept = candidates[kept[:post_nms_topk]]
        result = Instances(image_size)
        result.proposal_boxes = boxes[kept]
        result.objectness_logits = scores[kept]
        return result
