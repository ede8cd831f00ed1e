"""Y-KD / Dynamic Y-KD: a shared trunk, one task module per task, one unique mask head."""

import copy
from collections.abc import Mapping

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, GeneralizedRCNN, build_backbone
from detectron2.modeling.roi_heads import select_foreground_proposals
from detectron2.structures import ImageList, Instances
from torch import nn

from ...utils import check_finite_losses
from ..distiller import KDProposals, MaskKDOutputs, YKDDistiller
from ..loss_weights import check_loss_weights, scale_losses
from ..mask_head import UniqueMaskHead
from ..roi_heads import BoxOutputs, pool_parts
from ..task_module import TaskModule, freeze_

__all__ = ["YKDRCNN", "config_of_task"]


def config_of_task(cfg, task: int):
    """
    The config that builds task module ``task``: ``MODEL.YKD.NUM_CLASSES_PER_TASK`` cut after that
    task and ``MODEL.ROI_HEADS.NUM_CLASSES`` set to the classes of tasks 0..task.
    """
    per_task = list(cfg.MODEL.YKD.NUM_CLASSES_PER_TASK) or [cfg.MODEL.ROI_HEADS.NUM_CLASSES]
    if sum(per_task) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ValueError(
            f"MODEL.YKD.NUM_CLASSES_PER_TASK {per_task} sums to {sum(per_task)}, but"
            f" MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES}; set both together."
        )
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = per_task[: task + 1]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = sum(per_task[: task + 1])
    return cfg


@META_ARCH_REGISTRY.register()
class YKDRCNN(nn.Module):
    """
    Mask R-CNN for class-incremental instance segmentation (Y-KD; the method: ``docs/method.md``).

    ``task_modules[j]`` (RPN + box ROI heads) predicts the classes of tasks 0..j; the last module is
    the student, the earlier ones are frozen (eval mode, no gradient). The ``mask_head`` is unique
    and covers all classes. At step t >= 1 the trunk runs once; module t-1 is the teacher of the
    :class:`YKDDistiller` on the same features (``teacher="shared"``) or on those of a frozen copy
    of the step-(t-1) trunk (``teacher="separate"``, the ILOD/MMA-style baselines). With one module
    the model is a plain Mask R-CNN. Training losses are scaled by :attr:`loss_weights` (see
    :meth:`set_loss_weights`).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        task_modules: list[TaskModule],
        mask_head: UniqueMaskHead | None,
        distiller: YKDDistiller | None,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        teacher: str = "shared",
        new_class_init: str = "default",
        inference_modules: str = "all",
        inference_rpn: str = "per_task",
        c4_mask_features: str = "latest",
        input_format: str | None = None,
    ):
        """
        Args:
            backbone: the shared trunk.
            task_modules: one :class:`TaskModule` per task so far, in task order.
            mask_head: the unique mask head, or None without masks.
            distiller: the KD terms of steps t >= 1; None or all weights 0 = fine-tuning (the
                teacher never runs).
            pixel_mean, pixel_std: input normalisation, as in :class:`GeneralizedRCNN`.
            teacher: "shared" (teacher modules on the student's trunk features) or "separate".
            new_class_init: initialisation of new-class rows in :meth:`add_task`, "default"/"mib".
            inference_modules: "all" (Dynamic Y-KD: each module detects its own task's classes),
                "latest" (Y-KD: the last module detects all classes), or "module<t>" (module t
                alone, its own task's classes: to measure what merging costs).
            inference_rpn: "per_task" (each module uses its own RPN) or "latest" (the last RPN
                proposes for all modules).
            c4_mask_features: C4 only, whose res5 feeds the mask head at inference: "latest" or
                "own" (the module that detected the box).
            input_format: channel order of the input images, as in :class:`GeneralizedRCNN`.
        """
        super().__init__()
        modules_kind = "module<t>" if _single_module(inference_modules) is not None else None
        for name, value, choices in (
            ("TEACHER", teacher, ("shared", "separate")),
            (
                "INFERENCE.MODULES",
                modules_kind or inference_modules,
                ("all", "latest", "module<t>"),
            ),
            ("INFERENCE.RPN", inference_rpn, ("per_task", "latest")),
            ("INFERENCE.C4_MASK_FEATURES", c4_mask_features, ("latest", "own")),
        ):
            if value not in choices:
                raise ValueError(f"MODEL.YKD.{name} must be one of {choices}, got {value!r}")
        self.backbone = backbone
        self.task_modules = nn.ModuleList(task_modules)
        self.mask_head = mask_head
        self.distiller = distiller if distiller is not None and distiller.active else None
        self.teacher = teacher
        self.new_class_init = new_class_init
        self.inference_modules = inference_modules
        self.inference_rpn = inference_rpn
        self.c4_mask_features = c4_mask_features
        self.input_format = input_format
        self.loss_weights: dict[str, float] = {}
        """Weights of the training losses by loss name or prefix; {} = all 1 (not checkpointed)."""
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.teacher_backbone = None
        self.teacher_mask_head = None
        for module in self.task_modules[:-1]:
            freeze_(module)
        if self.num_tasks > 1:
            self._make_teachers()

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shape = backbone.output_shape()
        num_tasks = max(len(cfg.MODEL.YKD.NUM_CLASSES_PER_TASK), 1)
        modules = [TaskModule(config_of_task(cfg, j), shape) for j in range(num_tasks)]
        mask_head = None
        if cfg.MODEL.MASK_ON:
            mask_head = UniqueMaskHead(cfg, shape, roi_heads=modules[-1].roi_heads)
        return {
            "backbone": backbone,
            "task_modules": modules,
            "mask_head": mask_head,
            "distiller": YKDDistiller(
                cfg, feature_dim=modules[-1].box_predictor.cls_score.in_features
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "teacher": cfg.MODEL.YKD.TEACHER,
            "new_class_init": cfg.MODEL.YKD.INIT_NEW_CLASSES,
            "inference_modules": cfg.MODEL.YKD.INFERENCE.MODULES,
            "inference_rpn": cfg.MODEL.YKD.INFERENCE.RPN,
            "c4_mask_features": cfg.MODEL.YKD.INFERENCE.C4_MASK_FEATURES,
            "input_format": cfg.INPUT.FORMAT,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def num_tasks(self) -> int:
        return len(self.task_modules)

    @property
    def num_classes_per_task(self) -> list[int]:
        """Number of classes of each task, e.g. [15, 5]."""
        totals = [0] + [m.num_classes for m in self.task_modules]
        return [b - a for a, b in zip(totals[:-1], totals[1:], strict=True)]

    def frozen_modules(self) -> list[nn.Module]:
        """The modules kept frozen and in eval mode: earlier task modules and teacher copies."""
        frozen = list(self.task_modules[:-1])
        return frozen + [
            m for m in (self.teacher_backbone, self.teacher_mask_head) if m is not None
        ]

    def train(self, mode: bool = True):
        """As :meth:`nn.Module.train`, but frozen modules stay in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def set_loss_weights(self, weights: Mapping[str, float]) -> None:
        """
        Scale the training losses from now on: each loss returned by :meth:`forward` is multiplied
        by the weight of the longest key of ``weights`` that is its name or a prefix of it, 1 if
        none (:func:`~ykd.modeling.loss_weights.loss_weight`); ``{}`` restores the plain losses.
        The weights multiply those the losses already have (e.g. ``MODEL.YKD.KD_WEIGHTS``); a term
        of weight 0 is still computed. Example: ``{"loss": 0.0, "loss_kd": 1.0}`` keeps only
        distillation.
        """
        self.loss_weights = check_loss_weights(weights)

    def _make_teachers(self) -> None:
        """Frozen copies of the step-(t-1) trunk / mask head, where distillation needs them."""
        if self.distiller is None:
            return
        if self.teacher == "separate":
            self.teacher_backbone = freeze_(copy.deepcopy(self.backbone))
        if self.mask_head is not None and self.distiller.distils_masks:
            num_old_classes = self.task_modules[-2].num_classes
            self.teacher_mask_head = freeze_(self.mask_head.with_num_classes(num_old_classes))

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
        index = _single_module(self.inference_modules)
        if index is None:
            return detectors
        if index >= len(detectors):
            raise ValueError(
                f"MODEL.YKD.INFERENCE.MODULES is module{index}, but the model has"
                f" {len(detectors)} task modules: use module0 to module{len(detectors) - 1}."
            )
        return [detectors[index]]

    def add_task(self, num_new_classes: int) -> None:
        """
        Start a new step in memory: the last module is deep-copied into a new student whose
        predictor (and the mask head) grows by ``num_new_classes`` classes; every earlier module
        is frozen (eval, no grad), as are the teacher copies. Build the optimizer afterwards.
        """
        student = self.task_modules[-1]
        self.task_modules.append(student.grown(num_new_classes, init=self.new_class_init))
        freeze_(student)
        self._make_teachers()
        if self.mask_head is not None:
            self.mask_head.expand_classes(num_new_classes)

    def preprocess_image(self, batched_inputs: list[dict[str, torch.Tensor]]) -> ImageList:
        """Normalize, pad and batch the input images (as :class:`GeneralizedRCNN`)."""
        images = [x["image"].to(self.device) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def forward(self, batched_inputs: list[dict[str, torch.Tensor]]):
        """
        Args:
            batched_inputs: as for :class:`GeneralizedRCNN`; training needs "instances".

        Returns:
            In training, a dict of losses: the student's supervised losses (``loss_rpn_cls``,
            ``loss_rpn_loc``, ``loss_cls``, ``loss_box_reg``, ``loss_mask``) and, at steps t >= 1,
            the distillation terms with a positive weight (``loss_kd_*``), all scaled by
            :attr:`loss_weights`. In inference, as :meth:`inference`.

        Raises:
            NonFiniteLossError: in training, naming the non-finite loss terms (before any backward
                pass, so the bad iteration updates no weight).
        """
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)

        student = self.task_modules[-1]
        anchor_outputs = student.proposal_generator.predict_anchors(features)
        kd, teacher_features = None, None
        if self.distiller is not None and self.num_tasks > 1:
            if self.teacher_backbone is not None:
                with torch.no_grad():
                    teacher_features = self.teacher_backbone(images.tensor)
            kd = self.distiller.propose(
                images,
                features if teacher_features is None else teacher_features,
                self.task_modules[-2],
                anchor_outputs.anchors,
            )
        proposals, losses = student.proposal_generator(
            images, features, gt_instances, anchor_outputs=anchor_outputs
        )
        proposals, detector_losses, kd_boxes = student.roi_heads.forward_train(
            images, features, proposals, gt_instances, kd and kd.boxes
        )
        losses.update(detector_losses)
        kd_masks = None
        if self.mask_head is not None:
            mask_losses, kd_masks = self._mask_losses(features, proposals, student, kd, kd_boxes)
            losses.update(mask_losses)
        if kd is not None:
            losses.update(
                self.distiller(
                    kd=kd,
                    student=student,
                    teacher=self.task_modules[-2],
                    student_anchor_outputs=anchor_outputs,
                    student_boxes=kd_boxes,
                    student_masks=None if kd_masks is None else MaskKDOutputs(*kd_masks),
                    student_features=features,
                    teacher_features=features if self.teacher == "shared" else teacher_features,
                    shared_teacher=self.teacher == "shared",
                    teacher_mask_head=self.teacher_mask_head,
                )
            )
        losses = scale_losses(losses, self.loss_weights)
        check_finite_losses(losses)
        return losses

    def _mask_losses(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        student: TaskModule,
        kd: KDProposals | None,
        kd_boxes: BoxOutputs | None,
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """
        The supervised ``loss_mask`` on the student's foreground proposals and, with mask
        distillation, from the same head call, the head's (Rm, C, S, S) input and (Rm, K, M, M)
        logits on the Rm distillation boxes ``kd.mask_boxes`` (else None).
        """
        foreground, _ = select_foreground_proposals(proposals, student.num_classes)
        boxes = [p.proposal_boxes for p in foreground]
        if kd is None or kd.mask_boxes is None:
            roi_features = self.mask_head.roi_features(features, boxes, student)
            return self.mask_head(roi_features, foreground), None
        if self.mask_head.pooler is None:  # C4: res5 features of the student's box branch
            own = self.mask_head.roi_features(features, boxes, student)
            distilled = kd_boxes.roi_features
            if kd.mask_rows is not None:
                distilled = distilled[kd.mask_rows]
        else:
            own, distilled = pool_parts(
                lambda b: self.mask_head.roi_features(features, b, student),
                [boxes, kd.mask_boxes],
            )
        logits = self.mask_head.logits(torch.cat([own, distilled]))
        losses = self.mask_head.losses(logits[: len(own)], foreground)
        return losses, (distilled, logits[len(own) :])

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
        if len(proposals) < len(detectors):  # "latest": one RPN proposes for all modules
            proposals = proposals * len(detectors)
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


def _single_module(inference_modules: str) -> int | None:
    """t of ``MODEL.YKD.INFERENCE.MODULES`` "module<t>" (module t alone), else None."""
    suffix = inference_modules.removeprefix("module")
    return int(suffix) if suffix != inference_modules and suffix.isdigit() else None
