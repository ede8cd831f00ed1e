"""Config keys of `ykd`, added to a Detectron2 config by :func:`add_ykd_config`."""

from detectron2.config import CfgNode as CN


def add_ykd_config(cfg: CN) -> None:
    """
    Add every `ykd` key to ``cfg`` (in place). Each key's comment names what it sets; keys that set a
    parameter of a paper name the paper (DESIGN.md sections in brackets).
    """
    _add_continual_config(cfg)
    _add_synthetic_config(cfg)
    _add_slim_resnet_config(cfg)
    _add_ykd_model_config(cfg)
    _add_kd_cls_config(cfg)


def _add_continual_config(cfg: CN) -> None:
    cfg.CONTINUAL = CN()
    # Dataset of the continual scenario: "synthetic", "voc_sbd" or "coco" [§7].
    cfg.CONTINUAL.DATASET = "synthetic"
    # Scenario "A-B": A classes at step 0, then B new classes per step [§1].
    cfg.CONTINUAL.SCENARIO = "15-5"
    # Step of the scenario this config trains/evaluates (0 = base classes).
    cfg.CONTINUAL.STEP = 0
    # "overlapped" (MMA/Y-KD default) or "disjoint" (drop images holding future classes) [§1].
    cfg.CONTINUAL.SETTING = "overlapped"
    # Explicit class order: a permutation of the dataset's class names; empty = dataset order.
    cfg.CONTINUAL.CLASS_ORDER = []
    # Seed of a random class order (ignored when CLASS_ORDER is set); negative = dataset order.
    cfg.CONTINUAL.CLASS_ORDER_SEED = -1
    # Train on all seen classes with all their labels at once (the "Joint" upper bound) [§3].
    cfg.CONTINUAL.JOINT = False
    # Name of the method, used in output paths and result tables (e.g. "ft", "dynamic_ykd").
    cfg.CONTINUAL.METHOD = "ft"


def _add_synthetic_config(cfg: CN) -> None:
    cfg.SYNTHETIC = CN()
    # Cache folder of the generated synthetic dataset; empty = $DETECTRON2_DATASETS/synthetic.
    cfg.SYNTHETIC.ROOT = ""
    # Number of generated training / validation images.
    cfg.SYNTHETIC.NUM_TRAIN = 2000
    cfg.SYNTHETIC.NUM_VAL = 300
    # Side of the square synthetic images, in pixels.
    cfg.SYNTHETIC.IMAGE_SIZE = 128
    # Seed of the generator: the same seed gives byte-identical annotation files.
    cfg.SYNTHETIC.SEED = 0


def _add_slim_resnet_config(cfg: CN) -> None:
    cfg.MODEL.SLIM_RESNET = CN()
    # Output channels of the stem and of res2..res5 of the slim CPU ResNet (BasicBlocks).
    cfg.MODEL.SLIM_RESNET.STEM_OUT_CHANNELS = 32
    cfg.MODEL.SLIM_RESNET.STAGE_OUT_CHANNELS = [32, 64, 128, 256]
    # Number of BasicBlocks in res2..res5.
    cfg.MODEL.SLIM_RESNET.NUM_BLOCKS = [1, 1, 1, 1]


def _add_ykd_model_config(cfg: CN) -> None:
    cfg.MODEL.YKD = CN()


def _add_kd_cls_config(cfg: CN) -> None:
    cfg.MODEL.YKD.KD_CLS = CN()
    # Name of the ROI classification KD loss in the KD registry (ykd.distillation) [§4].
    cfg.MODEL.YKD.KD_CLS.NAME = "ukd"
