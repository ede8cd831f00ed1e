"""
Inference of a YKDRCNN (Dynamic Y-KD): the task modules that detect, each keeping its own
classes, their detections merged, and the unique mask head segmenting the merged boxes.
"""

import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Instances

from ..task_module import TaskModule

__all__ = ["MergedInference", "single_module"]


class MergedInference:
    """
    The inference half of :class:`~ykd.modeling.meta_arch.YKDRCNN` (a mixin): it reads the
    model's ``task_modules``, ``mask_head``, ``backbone``, ``inference_modules``,
    ``inference_rpn`` and ``c4_mask_features``.
    """

    def detectors(self) -> list[tuple[TaskModule, tuple[int, int]]]:
        """
        The task modules that detect at inference, each with the classes ``(start, end)`` it
        keeps: with ``inference_modules`` "all", every module its own task's classes; with
        "latest", the last module all classes; with "module<t>", module t alone, its own task's
        classes. (The only reader of ``inference_modules``.)
        """
        if self.inference_modules == "latest":
            return [(self.task_modules[-1], (0, self.task_modules[-1].num_classes))]
        ends = [module.num_classes for module in self.task_modules]
        starts = [0] + ends[:-1]
        detectors = [
            (module, (start, end))
            for module, start, end in zip(self.task_modules, starts, ends, strict=True)
        ]
        index = single_module(self.inference_modules)
        if index is None:
            return detectors
        if index >= len(detectors):
            raise ValueError(
                f"MODEL.YKD.INFERENCE.MODULES is module{index}, but the model has"
                f" {len(detectors)} task modules: use module0 to module{len(detectors) - 1}."
            )
        return [detectors[index]]

    def inference(
        self, batched_inputs: list[dict[str, torch.Tensor]], do_postprocess: bool = True
    ) -> list:
        """
        Detect with the modules of :meth:`detectors`, each keeping its classes; detections of all
        modules are concatenated (their classes are disjoint, so the per-class NMS of each module
        is the per-class NMS of the union) and the top-K by score kept; the unique mask head then
        segments the final boxes.

        Returns:
            As :meth:`GeneralizedRCNN.inference`: per image ``{"instances": Instances}`` with
            ``pred_boxes``, ``scores``, ``pred_classes`` (and ``pred_masks``).
        """
        assert not self.training
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        detectors = self.detectors()
        rpns = [module.proposal_generator for module, _ in detectors]
        if self.inference_rpn == "latest":
            rpns = [self.task_modules[-1].proposal_generator]
        anchors, proposals = None, []
        for rpn in rpns:  # the anchors of the first RPN serve all
            anchor_outputs = rpn.predict_anchors(features, anchors)
            anchors = anchor_outputs.anchors
            proposals.append(rpn(images, features, anchor_outputs=anchor_outputs)[0])
        if len(proposals) < len(detectors):
            # "latest": one RPN proposes for all modules; their box poolers are the same
            # parameter-free ROIPooler (one config), so the boxes are pooled once for all.
            boxes = [p.proposal_boxes for p in proposals[0]]
            pooled = detectors[-1][0].roi_heads.pool(features, boxes)
            detections = [
                module.roi_heads.detect_pooled(pooled, proposals[0], classes)
                for module, classes in detectors
            ]
        else:
            detections = [
                module.roi_heads.detect(features, p, classes)
                for (module, classes), p in zip(detectors, proposals, strict=True)
            ]
        top_k = self.task_modules[-1].box_predictor.test_topk_per_image
        results = [_merge(per_image, top_k) for per_image in zip(*detections, strict=True)]
        if self.mask_head is not None:
            results = self._segment(features, results, detectors)
        if do_postprocess:
            return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
        return results

    def _segment(
        self,
        features: dict[str, torch.Tensor],
        results: list[Instances],
        detectors: list[tuple[TaskModule, tuple[int, int]]],
    ) -> list[Instances]:
        """
        Add ``pred_masks`` to the detections with the unique mask head; C4 with
        ``c4_mask_features`` "own": each box through the res5 of the detector that found it.
        """
        boxes = [r.pred_boxes for r in results]
        if self.mask_head.pooler is not None or self.c4_mask_features == "latest":
            roi_features = self.mask_head.roi_features(features, boxes, self.task_modules[-1])
            return self.mask_head(roi_features, results)
        ends = torch.tensor([end for _, (_, end) in detectors], device=self.device)
        owners = torch.cat([torch.bucketize(r.pred_classes, ends, right=True) for r in results])
        roi_features = None
        for j, (module, _) in enumerate(detectors):
            mine = (owners == j).split([len(r) for r in results])
            part = self.mask_head.roi_features(
                features, [b[m] for b, m in zip(boxes, mine, strict=True)], module
            )
            if roi_features is None:
                roi_features = part.new_zeros((len(owners),) + part.shape[1:])
            roi_features[owners == j] = part
        return self.mask_head(roi_features, results)


def _merge(detections: list[Instances], top_k: int) -> Instances:
    """Concatenate one image's detections of several modules and keep the top-K by score."""
    if len(detections) == 1:
        return detections[0]
    merged = Instances.cat(list(detections))
    order = merged.scores.argsort(descending=True)
    return merged[order[:top_k] if top_k >= 0 else order]


def single_module(inference_modules: str) -> int | None:
    """t of ``MODEL.YKD.INFERENCE.MODULES`` "module<t>" (module t alone), else None."""
    suffix = inference_modules.removeprefix("module")
    return int(suffix) if suffix != inference_modules and suffix.isdigit() else None
