"""
Tiny CPU configs and inputs for the Y-KD model and checkpoint tests (64×64 images, few ROIs): the
slim CPU model of ``configs/base/mask_rcnn_slim_fpn_cpu.yaml``, narrowed.
"""

import os

import torch
from detectron2.config import get_cfg
from detectron2.structures import BitMasks, Boxes, Instances

import ykd.modeling  # noqa: F401  (registration)
from tests.conftest import REPO_ROOT
from ykd.config import add_ykd_config

SLIM_CPU_CONFIG = os.path.join(REPO_ROOT, "configs", "base", "mask_rcnn_slim_fpn_cpu.yaml")


def slim_cpu_cfg():
    """ykd's defaults with ``configs/base/mask_rcnn_slim_fpn_cpu.yaml`` (the slim CPU model)."""
    cfg = get_cfg()
    add_ykd_config(cfg)
    cfg.merge_from_file(SLIM_CPU_CONFIG)
    return cfg


def tiny_cfg(arch: str = "fpn", classes_per_task=(3,)):
    """
    The slim CPU model (:func:`slim_cpu_cfg`) with narrower layers and fewer proposals ("fpn"),
    or with Detectron2's R-18 C4 trunk and res5 ROI heads instead of its ResNet-FPN ("c4").
    """
    cfg = slim_cpu_cfg()
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.YKD.KD_PROPOSALS.TOPK = 16
    cfg.MODEL.YKD.KD_PROPOSALS.PER_IMAGE = 8
    if arch == "fpn":
        cfg.MODEL.SLIM_RESNET.STEM_OUT_CHANNELS = 16
        cfg.MODEL.SLIM_RESNET.STAGE_OUT_CHANNELS = [16, 24, 32, 48]
        cfg.MODEL.FPN.OUT_CHANNELS = 32
        cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
        cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
        cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    else:
        cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
        cfg.MODEL.RESNETS.DEPTH = 18
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
        cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16, 32]]
        cfg.MODEL.RPN.IN_FEATURES = ["res4"]
        cfg.MODEL.ROI_HEADS.NAME = "TaskRes5ROIHeads"
        cfg.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]
        cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 8
        cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 0
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = list(classes_per_task)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = sum(classes_per_task)
    return cfg


def tiny_inputs(classes: list[list[int]], size: int = 64, seed: int = 0) -> list[dict]:
    """One 3×size×size image per entry of ``classes``, with one box+mask instance per class id."""
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for image_classes in classes:
        image = torch.rand(3, size, size, generator=generator) * 255
        instances = Instances((size, size))
        boxes, masks = [], torch.zeros(len(image_classes), size, size, dtype=torch.bool)
        for i, _ in enumerate(image_classes):
            x0, y0 = torch.randint(0, size // 2, (2,), generator=generator).tolist()
            w, h = torch.randint(8, size // 2, (2,), generator=generator).tolist()
            boxes.append([x0, y0, x0 + w, y0 + h])
            masks[i, y0 : y0 + h, x0 : x0 + w] = True
            image[:, y0 : y0 + h, x0 : x0 + w] = 40.0 * (image_classes[i] + 1)
        instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_classes = torch.tensor(image_classes, dtype=torch.long)
        instances.gt_masks = BitMasks(masks)
        inputs.append({"image": image, "instances": instances, "height": size, "width": size})
    return inputs
