"""The box predictor of a task module: Fast R-CNN outputs that know old, own and new classes."""

import math

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference
from torch.nn import functional as F

from .class_growth import grown_linear, mib_init_
from .losses import unbiased_cross_entropy

__all__ = ["TaskFastRCNNOutputLayers"]


class TaskFastRCNNOutputLayers(FastRCNNOutputLayers):
    """
    :class:`FastRCNNOutputLayers` of task module j over all classes seen up to task j (+ bg last).

    Training: the classification loss is MMA's unbiased cross-entropy over the first
    ``num_old_classes`` classes (or plain cross-entropy). Inference (:meth:`inference`) may keep a
    range of classes only: the others get score 0 and are never detected, either by slicing the
    softmax over all classes or by renormalising it over {bg} ∪ the kept classes.
    """

    @configurable
    def __init__(
        self,
        input_shape,
        *,
        num_old_classes: int = 0,
        cls_loss: str = "unbiased",
        inference_scores: str = "slice",
        **kwargs,
    ):
        """
        Args:
            input_shape, kwargs: as for :class:`FastRCNNOutputLayers`.
            num_old_classes: number of classes of the earlier tasks (the first ones).
            cls_loss: "unbiased" (MMA's unbiased CE) or "ce".
            inference_scores: "slice" (softmax over all classes, restricted afterwards) or
                "renormalise" (softmax over {bg} ∪ the kept classes only).
        """
        super().__init__(input_shape, **kwargs)
        if cls_loss not in ("unbiased", "ce"):
            raise ValueError(f"MODEL.YKD.CLS_LOSS must be 'unbiased' or 'ce', got {cls_loss!r}")
        if inference_scores not in ("slice", "renormalise"):
            raise ValueError(
                f"MODEL.YKD.INFERENCE.SCORES must be 'slice' or 'renormalise', got {inference_scores!r}"
            )
        self.num_old_classes = num_old_classes
        self.cls_loss = cls_loss
        self.inference_scores = inference_scores

    @classmethod
    def from_config(cls, cfg, input_shape, num_old_classes: int = 0):
        ret = super().from_config(cfg, input_shape)
        ret["num_old_classes"] = num_old_classes
        ret["cls_loss"] = cfg.MODEL.YKD.CLS_LOSS
        ret["inference_scores"] = cfg.MODEL.YKD.INFERENCE.SCORES
        return ret

    def losses(self, predictions, proposals):
        """
        Detectron2's losses, with ``loss_cls`` replaced by the unbiased cross-entropy when there
        are old classes and ``cls_loss == "unbiased"``.
        """
        losses = super().losses(predictions, proposals)
        if self.cls_loss == "unbiased" and self.num_old_classes > 0:
            scores = predictions[0]
            gt_classes = (
                torch.cat([p.gt_classes for p in proposals])
                if proposals
                else scores.new_zeros(0, dtype=torch.long)
            )
            loss = unbiased_cross_entropy(scores, gt_classes, self.num_old_classes)
            losses["loss_cls"] = loss * self.loss_weight.get("loss_cls", 1.0)
        return losses

    def inference(self, predictions, proposals, classes: tuple[int, int] | None = None):
        """
        As :meth:`FastRCNNOutputLayers.inference`, detecting only the classes ``start <= c < end``
        of ``classes = (start, end)`` (None: all classes).

        Returns:
            As :func:`fast_rcnn_inference`: per image the detections, and their proposal indices.
        """
        return fast_rcnn_inference(
            self.predict_boxes(predictions, proposals),
            self.predict_probs(predictions, proposals, classes),
            [x.image_size for x in proposals],
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
        )

    def predict_probs(self, predictions, proposals, classes: tuple[int, int] | None = None):
        """
        Args:
            predictions: (R, K+1) class logits and the box deltas, from :meth:`forward`.
            proposals: per image, the Ri proposals (sum Ri = R).
            classes: ``(start, end)``, the kept classes; None: all.

        Returns:
            list[Tensor]: per image, (Ri, K+1) probabilities, 0 for the classes not kept.
        """
        if classes is None or tuple(classes) == (0, self.num_classes):
            return super().predict_probs(predictions, proposals)
        scores, _ = predictions
        start, end = classes
        kept = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
        kept[start:end] = True
        kept[-1] = True
        if self.inference_scores == "renormalise":
            probs = F.softmax(scores.masked_fill(~kept, -math.inf), dim=1)
        else:
            probs = F.softmax(scores, dim=1) * kept
        return probs.split([len(p) for p in proposals], dim=0)

    def expand_classes(self, num_new_classes: int, *, init: str = "default") -> None:
        """
        Grow the classifier and the box regressor to ``num_new_classes`` more classes, in place.
        Old rows (and the background row) are kept; the previous classes all become old classes.

        Args:
            num_new_classes: number of classes of the new task.
            init: "default" (Detectron2's initialisation of new rows) or "mib" (MiB: new rows copy
                the background's, and the new and background biases share its probability).
        """
        if init not in ("default", "mib"):
            raise ValueError(f"MODEL.YKD.INIT_NEW_CLASSES must be 'default' or 'mib', got {init!r}")
        num_classes = self.num_classes + num_new_classes
        self.cls_score = grown_linear(
            self.cls_score, num_classes + 1, std=0.01, background_last=True
        )
        box_dim = len(self.box2box_transform.weights)
        if self.bbox_pred.out_features != box_dim:  # class-specific regression
            self.bbox_pred = grown_linear(
                self.bbox_pred, num_classes * box_dim, std=0.001, background_last=False
            )
        self.num_old_classes = self.num_classes
        self.num_classes = num_classes
        if init == "mib":
            mib_init_(self.cls_score, num_new_classes)
