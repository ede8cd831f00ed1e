"""The distillation terms of a Y-KD step t >= 1: teacher module t-1 against student module t."""

from collections.abc import Mapping
from itertools import accumulate
from typing import NamedTuple

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ykd.distillation import (
    FeatureDistiller,
    FeatureKDInputs,
    build_feature_kds_from_cfg,
    build_kd_loss_from_cfg,
    with_kd_config,
)

from .loss_weights import loss_weight
from .losses import box_kd_loss, mask_kd_loss, rpn_kd_loss
from .mask_head import UniqueMaskHead
from .roi_heads import BoxOutputs
from .rpn import AnchorOutputs
from .task_module import TaskModule

__all__ = ["KDProposals", "MaskKDOutputs", "YKDDistiller"]


class KDProposals(NamedTuple):
    """What the teacher's RPN gives distillation (:meth:`YKDDistiller.propose`)."""

    anchor_outputs: AnchorOutputs
    """The teacher RPN's anchor outputs."""
    boxes: list[Boxes] | None
    """Per image, the Ri distillation boxes (None without ROI distillation)."""
    mask_boxes: list[Boxes] | None
    """Per image, the first ones of ``boxes`` that mask distillation uses (None without it)."""
    mask_rows: torch.Tensor | None
    """Rows of the mask boxes among the concatenated ``boxes``; None: all rows."""


class MaskKDOutputs(NamedTuple):
    """The student mask head's call on the Rm mask-distillation boxes (``KDProposals.mask_boxes``)."""

    roi_features: torch.Tensor
    """(Rm, C, S, S) the head's input (FPN: pooled trunk features; C4: res5 features)."""
    logits: torch.Tensor
    """(Rm, K, M, M) its mask logits over the student's K classes."""


class YKDDistiller(nn.Module):
    """
    Computes ``loss_kd_rpn``, ``loss_kd_cls``, ``loss_kd_box`` and ``loss_kd_mask``; only terms
    with a positive weight are returned, and only those of :meth:`computed_terms` computed (the
    others, of weight 0 under the model's loss weights, e.g. in a stage of a stage schedule, are
    returned as 0). The teacher's RPN proposes boxes with its
    test-time settings; the ``num_proposals_topk`` best by objectness are kept and
    ``num_proposals_per_image`` of them sampled at random (Y-KD: 128 and 64); teacher and student
    ROI heads then run on the same boxes (the mask heads on the first
    ``num_mask_proposals_per_image`` of them). Teacher outputs are computed under
    ``torch.no_grad``. With a shared trunk the teacher reuses the student's ROI-pooled features of
    the boxes (detached): both pool the same features.

    Feature distillers (``ykd.distillation.FEATURE_KD_REGISTRY``, e.g. interactive KD on the box
    head's hidden features of the same boxes, Faster-ILOD's trunk KD) add their own terms; they may
    have parameters of their own (trained, in the model's state dict) and are built with the model
    of a step t >= 1 only (not by :meth:`YKDRCNN.add_task`).
    """

    @configurable
    def __init__(
        self,
        *,
        kd_cls_loss: nn.Module | None,
        loss_weights: dict[str, float],
        num_proposals_topk: int = 128,
        num_proposals_per_image: int = 64,
        num_mask_proposals_per_image: int = -1,
        rpn_delta_threshold: float = 0.1,
        feature_kds: Mapping[str, FeatureDistiller] | None = None,
    ):
        """
        Args:
            kd_cls_loss: ``loss(student_logits (R, K+1), teacher_logits (R, K_old+1)) -> scalar``
                from the KD registry; None when its weight is 0.
            loss_weights: weight of each of "loss_kd_cls", "loss_kd_box", "loss_kd_mask",
                "loss_kd_rpn" (missing = 0).
            num_proposals_topk: teacher proposals kept per image, by objectness.
            num_proposals_per_image: of those, proposals sampled at random per image.
            num_mask_proposals_per_image: of those, how many (the first ones of the random
                sample) mask distillation uses; -1: all.
            rpn_delta_threshold: objectness gap above which RPN deltas are distilled.
            feature_kds: registered name -> feature distiller (weighted terms of their own).
        """
        super().__init__()
        self.kd_cls_loss = kd_cls_loss
        self.loss_weights = {k: v for k, v in loss_weights.items() if v > 0}
        if "loss_kd_cls" in self.loss_weights and kd_cls_loss is None:
            raise ValueError("A positive loss_kd_cls weight needs a kd_cls_loss")
        self.num_proposals_topk = num_proposals_topk
        self.num_proposals_per_image = num_proposals_per_image
        self.num_mask_proposals_per_image = num_mask_proposals_per_image
        self.rpn_delta_threshold = rpn_delta_threshold
        self.feature_kds = nn.ModuleDict(dict(feature_kds or {}))

    @classmethod
    def from_config(cls, cfg, feature_dim: int = 0):
        """
        Args:
            feature_dim: D, the width of the box predictor's input (for the feature distillers).
        """
        cfg = with_kd_config(cfg)
        ykd = cfg.MODEL.YKD
        weights = ykd.KD_WEIGHTS
        feature_kds = {}
        if len(ykd.NUM_CLASSES_PER_TASK) > 1:
            feature_kds = build_feature_kds_from_cfg(
                ykd, ykd.FEATURE_KD.NAMES, student_dim=feature_dim, teacher_dim=feature_dim
            )
        shared = [n for n, kd in feature_kds.items() if kd.needs_separate_teacher]
        if shared and ykd.TEACHER == "shared":
            raise ValueError(
                f"Feature distiller {shared[0]!r} compares the trunks of student and teacher, which "
                "a shared trunk makes identical; set MODEL.YKD.TEACHER 'separate' or turn it off"
            )
        return {
            "feature_kds": feature_kds,
            "kd_cls_loss": build_kd_loss_from_cfg(ykd.KD_CLS) if weights.CLS > 0 else None,
            "loss_weights": {
                "loss_kd_cls": weights.CLS,
                "loss_kd_box": weights.BOX,
                "loss_kd_mask": weights.MASK if cfg.MODEL.MASK_ON else 0.0,
                "loss_kd_rpn": weights.RPN,
            },
            "num_proposals_topk": ykd.KD_PROPOSALS.TOPK,
            "num_proposals_per_image": ykd.KD_PROPOSALS.PER_IMAGE,
            "num_mask_proposals_per_image": ykd.KD_PROPOSALS.MASK_PER_IMAGE,
            "rpn_delta_threshold": ykd.RPN_KD_DELTA_THRESH,
        }

    @property
    def active(self) -> bool:
        """Whether any term has a positive weight (otherwise the teacher never runs)."""
        return bool(self.loss_weights) or len(self.feature_kds) > 0

    @property
    def distils_masks(self) -> bool:
        """Whether mask distillation has a positive weight (then a teacher mask head is needed)."""
        return "loss_kd_mask" in self.loss_weights

    @property
    def distils_rois(self) -> bool:
        """Whether a term needs distillation boxes (then the box branches all run on them)."""
        return self._needs_rois(self.computed_terms({}))

    def computed_terms(self, model_weights: Mapping[str, float]) -> frozenset[str]:
        """
        The loss names to compute: those of positive weight whose weight under ``model_weights``
        (the model's loss weights, :func:`~ykd.modeling.loss_weights.loss_weight`) is positive too;
        a feature distiller's names when any of them is. Empty: the teacher need not run.
        """
        return frozenset(
            name for name in self._loss_names() if loss_weight(name, model_weights) > 0
        )

    def zero_losses(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """0 (a scalar of ``like``'s dtype and device) for every loss the distiller returns."""
        zero = like.new_zeros(())
        return {name: zero for name in self._loss_names()}

    def _loss_names(self) -> list[str]:
        """Every loss the distiller returns: its terms of positive weight, its feature KDs'."""
        feature_names = [name for kd in self.feature_kds.values() for name in kd.loss_names]
        return [*self.loss_weights, *feature_names]

    def _needs_rois(self, terms: frozenset[str]) -> bool:
        roi_terms = {"loss_kd_cls", "loss_kd_box", "loss_kd_mask"}
        return bool(terms & roi_terms) or any(
            kd.needs_rois for kd in self._computed_feature_kds(terms)
        )

    def _computed_feature_kds(self, terms: frozenset[str]) -> list[FeatureDistiller]:
        return [kd for kd in self.feature_kds.values() if terms.intersection(kd.loss_names)]

    @torch.no_grad()
    def propose(
        self,
        images: ImageList,
        teacher_features: dict[str, torch.Tensor],
        teacher: TaskModule,
        anchors: list[Boxes],
        terms: frozenset[str],
    ) -> KDProposals:
        """
        The teacher's RPN outputs and, with ROI terms, the distillation boxes.

        Args:
            images: the input images.
            teacher_features: the teacher's features (the student's with a shared trunk).
            teacher: task module t-1 (frozen, in eval mode).
            anchors: the anchors of the features (the student RPN's).
            terms: the terms to compute (:meth:`computed_terms`).
        """
        anchor_outputs = teacher.proposal_generator.predict_anchors(teacher_features, anchors)
        if not self._needs_rois(terms):
            return KDProposals(anchor_outputs, None, None, None)
        proposals, _ = teacher.proposal_generator(
            images, teacher_features, anchor_outputs=anchor_outputs
        )
        boxes = self._sample_boxes(proposals)
        if "loss_kd_mask" not in terms:
            return KDProposals(anchor_outputs, boxes, None, None)
        keep = self.num_mask_proposals_per_image
        if keep < 0 or all(len(b) <= keep for b in boxes):
            return KDProposals(anchor_outputs, boxes, boxes, None)
        starts = accumulate([len(b) for b in boxes[:-1]], initial=0)
        rows = [torch.arange(s, s + min(len(b), keep)) for s, b in zip(starts, boxes, strict=True)]
        mask_rows = torch.cat(rows).to(boxes[0].device)
        return KDProposals(anchor_outputs, boxes, [b[:keep] for b in boxes], mask_rows)

    def _sample_boxes(self, proposals: list[Instances]) -> list[Boxes]:
        boxes = []
        for p in proposals:
            best = p.proposal_boxes[: self.num_proposals_topk]
            keep = torch.randperm(len(best), device=best.device)[: self.num_proposals_per_image]
            boxes.append(best[keep])
        return boxes

    def forward(
        self,
        *,
        kd: KDProposals,
        student: TaskModule,
        teacher: TaskModule,
        student_anchor_outputs: AnchorOutputs,
        student_boxes: BoxOutputs | None,
        student_masks: MaskKDOutputs | None,
        student_features: dict[str, torch.Tensor],
        teacher_features: dict[str, torch.Tensor],
        shared_teacher: bool,
        teacher_mask_head: UniqueMaskHead | None,
        terms: frozenset[str],
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            kd: the teacher's RPN outputs and the distillation boxes, from :meth:`propose`.
            student: task module t.
            teacher: task module t-1 (frozen, in eval mode).
            student_anchor_outputs: the student RPN's :meth:`TaskRPN.predict_anchors`.
            student_boxes: the student's box branch on ``kd.boxes`` (None without ROI terms).
            student_masks: the student mask head on ``kd.mask_boxes`` (None without mask
                distillation).
            student_features: the student's trunk features.
            teacher_features: the teacher's trunk features: its own trunk's, or
                ``student_features`` with a shared trunk.
            shared_teacher: whether the teacher runs on the student's trunk; then it reuses the
                student's pooled features (detached) instead of pooling ``teacher_features``.
            teacher_mask_head: the frozen mask head over the old classes (mask distillation).
            terms: the terms to compute (:meth:`computed_terms`, as given to :meth:`propose`).

        Returns:
            dict of weighted losses: every term of positive weight, 0 for those not computed.
        """
        losses = {}
        if "loss_kd_rpn" in terms:
            losses["loss_kd_rpn"] = rpn_kd_loss(
                torch.cat(student_anchor_outputs.objectness, dim=1),
                torch.cat(kd.anchor_outputs.objectness, dim=1),
                torch.cat(student_anchor_outputs.deltas, dim=1),
                torch.cat(kd.anchor_outputs.deltas, dim=1),
                delta_threshold=self.rpn_delta_threshold,
            )
        t_boxes = None
        if self._needs_rois(terms):
            t_boxes = self._teacher_boxes(
                kd, student_boxes, teacher, teacher_features, shared_teacher
            )
            losses.update(self._roi_losses(kd, student_boxes, t_boxes, terms))
        if "loss_kd_mask" in terms:
            losses["loss_kd_mask"] = self._mask_loss(
                kd,
                student_masks,
                t_boxes,
                teacher,
                teacher_features,
                shared_teacher,
                teacher_mask_head,
            )
        losses = self.zero_losses(student_anchor_outputs.objectness[0]) | self._weighted(losses)
        feature_kds = self._computed_feature_kds(terms)
        if feature_kds:
            roi_fields = {}
            if any(kd.needs_rois for kd in feature_kds):
                roi_fields = {
                    "student_hidden": student_boxes.hidden,
                    "teacher_hidden": t_boxes.hidden,
                    "student_logits": student_boxes.scores,
                    "teacher_logits": t_boxes.scores,
                    "student_head": student.box_predictor.cls_score,
                    "teacher_head": teacher.box_predictor.cls_score,
                }
            inputs = FeatureKDInputs(
                student_trunk=student_features,
                teacher_trunk=teacher_features,
                shared_teacher=shared_teacher,
                **roi_fields,
            )
            for feature_kd in feature_kds:
                losses.update(feature_kd.distil(inputs))
        return losses

    @torch.no_grad()
    def _teacher_boxes(
        self,
        kd: KDProposals,
        student_boxes: BoxOutputs,
        teacher: TaskModule,
        teacher_features: dict[str, torch.Tensor],
        shared_teacher: bool,
    ) -> BoxOutputs:
        """The teacher's box branch on the distillation boxes."""
        if shared_teacher:
            pooled = student_boxes.pooled.detach()
        else:
            pooled = teacher.roi_heads.pool(teacher_features, kd.boxes)
        return teacher.roi_heads.predict_pooled(pooled)

    def _roi_losses(
        self,
        kd: KDProposals,
        student_boxes: BoxOutputs,
        t_boxes: BoxOutputs,
        terms: frozenset[str],
    ) -> dict[str, torch.Tensor]:
        losses = {}
        if "loss_kd_cls" in terms:
            losses["loss_kd_cls"] = self.kd_cls_loss(
                student_boxes.scores, t_boxes.scores, num_rois_per_image=[len(b) for b in kd.boxes]
            )
        if "loss_kd_box" in terms:
            losses["loss_kd_box"] = box_kd_loss(student_boxes.deltas, t_boxes.deltas)
        return losses

    def _mask_loss(
        self,
        kd: KDProposals,
        student_masks: MaskKDOutputs,
        t_boxes: BoxOutputs,
        teacher: TaskModule,
        teacher_features: dict[str, torch.Tensor],
        shared_teacher: bool,
        teacher_mask_head: UniqueMaskHead,
    ) -> torch.Tensor:
        with torch.no_grad():
            if teacher_mask_head.pooler is None:  # C4: the teacher's res5 features
                mask_input = t_boxes.roi_features
                if kd.mask_rows is not None:
                    mask_input = mask_input[kd.mask_rows]
            elif shared_teacher:
                mask_input = student_masks.roi_features.detach()
            else:
                mask_input = teacher_mask_head.roi_features(
                    teacher_features, kd.mask_boxes, teacher
                )
            t_masks = teacher_mask_head.logits(mask_input)
        return mask_kd_loss(student_masks.logits, t_masks)

    def _weighted(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v * self.loss_weights[k] for k, v in losses.items()}
