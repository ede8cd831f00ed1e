"""Y-KD / Dynamic Y-KD: a shared trunk, one task module per task, one unique mask head."""

import copy
from collections.abc import Mapping

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.roi_heads import select_foreground_proposals
from detectron2.structures import ImageList, Instances
from torch import nn

from ...utils import check_finite_losses
from ..distiller import KDProposals, MaskKDOutputs, YKDDistiller
from ..loss_weights import check_loss_weights, scale_losses
from ..mask_head import UniqueMaskHead
from ..roi_heads import BoxOutputs, pool_parts
from ..task_module import TaskModule, freeze_
from .merged_inference import MergedInference, single_module

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
class YKDRCNN(MergedInference, nn.Module):
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
        trunk_frozen: bool = False,
        trunk_norm_frozen: bool = False,
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
            trunk_frozen: at steps t >= 1 (more than one module), the trunk is frozen (eval mode,
                no gradient): the old modules keep the features they were trained on.
            trunk_norm_frozen: at steps t >= 1, the trunk's BatchNorm layers stay in eval mode:
                their statistics keep those of the earlier steps' data.
        """
        super().__init__()
        modules_kind = "module<t>" if single_module(inference_modules) is not None else None
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
        self.trunk_frozen = trunk_frozen
        self.trunk_norm_frozen = trunk_norm_frozen
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
            self._freeze_trunk()

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
            "trunk_frozen": cfg.MODEL.YKD.TRUNK.LR_FACTOR == 0,
            "trunk_norm_frozen": cfg.MODEL.YKD.TRUNK.FREEZE_NORM,
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
        """
        The modules kept in eval mode: earlier task modules, teacher copies and, at steps t >= 1,
        the trunk (``trunk_frozen``) or its BatchNorm layers (``trunk_norm_frozen``).
        """
        frozen = list(self.task_modules[:-1])
        if self.num_tasks > 1 and self.trunk_frozen:
            frozen.append(self.backbone)
        elif self.num_tasks > 1 and self.trunk_norm_frozen:
            norms = nn.modules.batchnorm._BatchNorm
            frozen += [m for m in self.backbone.modules() if isinstance(m, norms)]
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
        The weights multiply those the losses already have (e.g. ``MODEL.YKD.KD_WEIGHTS``); a
        distillation term of weight 0 is not computed (the teacher does not run when all are 0),
        a supervised one is. Example: ``{"loss": 0.0, "loss_kd": 1.0}`` keeps only
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

    def _freeze_trunk(self) -> None:
        """At steps t >= 1 with ``trunk_frozen``: no gradient for the trunk (out of the optimizer)."""
        if self.trunk_frozen:
            freeze_(self.backbone)

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
        self._freeze_trunk()
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
            the distillation terms with a positive weight (``loss_kd_*``; 0, not computed, where
            :attr:`loss_weights` gives a term weight 0), all scaled by :attr:`loss_weights`. In
            inference, as :meth:`inference`.

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
        kd, teacher_features, terms = None, None, frozenset()
        distilling = self.distiller is not None and self.num_tasks > 1
        if distilling:
            # Terms of weight 0 under the loss weights (e.g. a stage's) are not computed.
            terms = self.distiller.computed_terms(self.loss_weights)
        if terms:
            if self.teacher_backbone is not None:
                with torch.no_grad():
                    teacher_features = self.teacher_backbone(images.tensor)
            kd = self.distiller.propose(
                images,
                features if teacher_features is None else teacher_features,
                self.task_modules[-2],
                anchor_outputs.anchors,
                terms,
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
                    terms=terms,
                )
            )
        elif distilling:
            losses.update(self.distiller.zero_losses(losses["loss_rpn_cls"]))
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
