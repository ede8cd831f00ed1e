"""Config keys of `ykd`, added to a Detectron2 config by :func:`add_ykd_config`."""

from detectron2.config import CfgNode as CN

from .distillation.config import add_kd_config


def add_ykd_config(cfg: CN) -> None:
    """
    Add every `ykd` key to ``cfg`` (in place). Each key's comment names what it sets; the method
    behind the keys is described in docs/method.md, its open choices and their defaults there too.
    """
    _add_continual_config(cfg)
    _add_synthetic_config(cfg)
    _add_slim_resnet_config(cfg)
    _add_ykd_model_config(cfg)
    _add_kd_cls_config(cfg)
    _add_interactive_config(cfg)
    _add_stages_config(cfg)
    add_kd_config(cfg)


def _add_continual_config(cfg: CN) -> None:
    cfg.CONTINUAL = CN()
    # Dataset of the continual scenario: "synthetic", "voc_sbd" or "coco".
    cfg.CONTINUAL.DATASET = "synthetic"
    # Scenario "A-B": A classes at step 0, then B new classes per step.
    cfg.CONTINUAL.SCENARIO = "15-5"
    # Step of the scenario this config trains/evaluates (0 = base classes).
    cfg.CONTINUAL.STEP = 0
    # "overlapped" (MMA/Y-KD default) or "disjoint" (drop images holding future classes).
    cfg.CONTINUAL.SETTING = "overlapped"
    # Explicit class order: a permutation of the dataset's class names; empty = dataset order.
    cfg.CONTINUAL.CLASS_ORDER = []
    # Seed of a random class order (ignored when CLASS_ORDER is set); negative = dataset order.
    cfg.CONTINUAL.CLASS_ORDER_SEED = -1
    # Train on all seen classes with all their labels at once (the "Joint" upper bound).
    cfg.CONTINUAL.JOINT = False
    # Name of the method, used in output paths and result tables (e.g. "ft", "dynamic_ykd").
    cfg.CONTINUAL.METHOD = "ft"
    # Root of scenario outputs; a step writes to <root>/<dataset>/<scenario>/<method>/step<t>
    # (OUTPUT_DIR is derived from it).
    cfg.CONTINUAL.OUTPUT_ROOT = "./output"
    # Config overrides ("KEY", "VALUE", ...) applied last, at steps >= 1 only:
    # the incremental steps' schedule (e.g. MMA's 2.5K-10K iterations at LR 4e-4, Y-KD's LR 1e-3).
    cfg.CONTINUAL.INCREMENTAL_OPTS = []
    # Per-step-shape overrides, applied at steps >= 1 before INCREMENTAL_OPTS (which wins): a list
    # of [max_new_classes, ["KEY", "VALUE", ...]]; the first rule whose max_new_classes is at least
    # the number of classes the step adds applies, e.g. MMA's 2.5K iterations for one-class steps
    # and 10K for five- and ten-class steps. Empty = no rule.
    cfg.CONTINUAL.STEP_RULES = []
    # Seed of the incremental steps (steps >= 1; negative = SEED): seeds of one scenario share
    # step 0 and write to <method>_seed<s>/.
    cfg.CONTINUAL.INCREMENTAL_SEED = -1
    # Checkpoint that a step t >= 1 starts from; empty = step t-1's model_final.pth in the output
    # tree. (MODEL.WEIGHTS stays the initialisation of step 0 and of joint training.)
    cfg.CONTINUAL.PREVIOUS_WEIGHTS = ""
    # Derived by the engine (like OUTPUT_DIR): the folder of the step 0 that this config shares with
    # every method of its scenario.
    cfg.CONTINUAL.STEP0_DIR = ""
    # The held-out split evaluations use: "test" (the reported numbers) or "dev" (a development
    # split for choosing settings without the test images; synthetic only). A dev evaluation of a
    # finished step goes to its own folder (<step>/eval_dev/, eval-only); training needs "test".
    cfg.CONTINUAL.TEST_SPLIT = "test"
    # Evaluation extras: the MMA/Y-KD papers' VOC AP (all-point, IoU .50:.05:.95) and the expected
    # calibration error of detection scores.
    cfg.CONTINUAL.EVAL_VOC_METRIC = False
    cfg.CONTINUAL.EVAL_CALIBRATION = True
    # IoU thresholds of the VOC AP: "50:95" (.50:.05:.95, Y-KD's code) or "50:90" (MMA's).
    cfg.CONTINUAL.EVAL_VOC_IOU_THRESHOLDS = "50:95"
    # Number of fixed test images whose predictions (old / new classes in two colours) are drawn
    # into <step OUTPUT_DIR>/predictions.png after each step; 0 = no picture.
    cfg.CONTINUAL.VIS_NUM_IMAGES = 8


def _add_synthetic_config(cfg: CN) -> None:
    cfg.SYNTHETIC = CN()
    # Cache folder of the generated synthetic dataset; empty = $DETECTRON2_DATASETS/synthetic.
    cfg.SYNTHETIC.ROOT = ""
    # Number of generated training / validation images.
    cfg.SYNTHETIC.NUM_TRAIN = 2000
    cfg.SYNTHETIC.NUM_VAL = 300
    # Number of images of the development split (CONTINUAL.TEST_SPLIT "dev"), generated on demand.
    cfg.SYNTHETIC.NUM_DEV = 300
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
    # Backward of the ROIAlign poolers (box and mask): "torchvision" (its kernel) or "separable"
    # (two batched matrix products, equal gradients; several times faster on CPU, where
    # torchvision's backward runs on one thread). See ykd/modeling/poolers.py.
    cfg.MODEL.ROI_ALIGN_BACKWARD = "torchvision"


def _add_ykd_model_config(cfg: CN) -> None:
    # Keys of the YKDRCNN meta-architecture. ROI_HEADS.NAME must be "TaskStandardROIHeads"
    # (FPN) or "TaskRes5ROIHeads" (C4), PROPOSAL_GENERATOR.NAME "TaskRPN".
    cfg.MODEL.YKD = CN()
    # Classes of each task up to the current step, e.g. [15, 5] at step 1 of 15-5 (one task module
    # per entry; filled by the engine, sum = ROI_HEADS.NUM_CLASSES); [] = one task.
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = []
    # Teacher of steps t >= 1: "shared" (Y-KD: frozen module t-1 on the student's trunk features) or
    # "separate" (ILOD/Faster-ILOD/MMA: a frozen copy of the step-(t-1) trunk runs its own
    # forward).
    cfg.MODEL.YKD.TEACHER = "shared"
    # Supervised classification loss of the student at steps t >= 1: "unbiased" (MMA's unbiased CE)
    # or "ce".
    cfg.MODEL.YKD.CLS_LOSS = "unbiased"
    # Initialisation of the new-class rows of a grown predictor: "default" (Detectron2's) or "mib"
    # (MiB: copy the bg row, new and bg biases share the old bg probability).
    cfg.MODEL.YKD.INIT_NEW_CLASSES = "default"
    # Distillation proposals: the teacher RPN's TOPK best by objectness (test-time settings), of
    # which PER_IMAGE are sampled at random per image (the papers: 128 and 64).
    cfg.MODEL.YKD.KD_PROPOSALS = CN()
    cfg.MODEL.YKD.KD_PROPOSALS.TOPK = 128
    cfg.MODEL.YKD.KD_PROPOSALS.PER_IMAGE = 64
    # Of those, how many (the first ones of the random sample, so a random subset) mask KD uses;
    # -1 = all PER_IMAGE. Mask KD dominates the cost of a Y-KD iteration (two mask
    # heads on 64 ROIs per image, about 8x the supervised mask work): e.g. 8 makes it an unbiased
    # estimate of the same loss, with more variance, at a fraction of the cost.
    cfg.MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE = -1
    # Weights of the distillation losses; all 0 = fine-tuning, the teacher never runs.
    cfg.MODEL.YKD.KD_WEIGHTS = CN()
    # loss_kd_cls: ROI classification KD (the loss named by MODEL.YKD.KD_CLS.NAME).
    cfg.MODEL.YKD.KD_WEIGHTS.CLS = 1.0
    # loss_kd_box: L2 between student and teacher old-class box deltas.
    cfg.MODEL.YKD.KD_WEIGHTS.BOX = 1.0
    # loss_kd_mask: BCE of student old-class mask logits against sigmoid(teacher logits).
    cfg.MODEL.YKD.KD_WEIGHTS.MASK = 1.0
    # loss_kd_rpn: Faster-ILOD RPN distillation (objectness + deltas).
    cfg.MODEL.YKD.KD_WEIGHTS.RPN = 1.0
    # Faster-ILOD: RPN deltas are distilled where teacher minus student objectness exceeds this.
    cfg.MODEL.YKD.RPN_KD_DELTA_THRESH = 0.1
    cfg.MODEL.YKD.INFERENCE = CN()
    # "all" (Dynamic Y-KD: every module detects its own task's classes, detections merged) or
    # "latest" (plain Y-KD: the last module detects all classes).
    cfg.MODEL.YKD.INFERENCE.MODULES = "all"
    # Open choice (docs/method.md): a module's class scores are the softmax over all its classes restricted to
    # its own task ("slice", default) or a softmax over {bg} ∪ its own classes ("renormalise").
    cfg.MODEL.YKD.INFERENCE.SCORES = "slice"
    # Open choice (docs/method.md): proposals of each module from its own RPN ("per_task", default) or from the
    # latest RPN for all modules ("latest").
    cfg.MODEL.YKD.INFERENCE.RPN = "per_task"
    # Open choice (docs/method.md), C4 only: the res5 feeding the unique mask head at inference, the latest
    # module's ("latest", default) or that of the module that detected the box ("own").
    cfg.MODEL.YKD.INFERENCE.C4_MASK_FEATURES = "latest"
    # Checkpoint averaging at the end of each incremental step: α on step t-1's task module
    # and mask head, 1-α on step t's; model_averaged.pth is kept and evaluated beside the raw
    # model_final.pth (ykd/engine/step_averaging.py). 0 = off.
    cfg.MODEL.YKD.AVERAGING = CN()
    cfg.MODEL.YKD.AVERAGING.ALPHA = 0.0
    # "module": task module t and the mask head, the class rows both steps have averaged;
    # "official": the authors' script, every same-shape tensor outside the trunk, grown class rows
    # left as step t's (ykd/checkpoint/averaging.py).
    cfg.MODEL.YKD.AVERAGING.MODE = "module"
    # A checkpoint whose trunk replaces the averaged model's (the authors' option); "" = none.
    cfg.MODEL.YKD.AVERAGING.TRUNK = ""
    # The shared trunk (backbone with FPN) at the incremental steps (t >= 1), against its drift
    # under the frozen old task modules (docs/benchmark.md, "Where Dynamic Y-KD loses").
    cfg.MODEL.YKD.TRUNK = CN()
    # Learning-rate factor of the trunk's parameters; 0 freezes the trunk (no gradient, eval mode).
    cfg.MODEL.YKD.TRUNK.LR_FACTOR = 1.0
    # Keep the trunk's BatchNorm layers in eval mode (their statistics those of earlier steps).
    cfg.MODEL.YKD.TRUNK.FREEZE_NORM = False


def _add_kd_cls_config(cfg: CN) -> None:
    cfg.MODEL.YKD.KD_CLS = CN()
    # Name of the ROI classification KD loss in the KD registry (ykd.distillation):
    # kl, rkl, js, tv, skew_kl, skew_rkl, bdkd, sinkd, nkd, uskd, dkd, mdist, rdist, ukd (MMA), l2 (ILOD).
    cfg.MODEL.YKD.KD_CLS.NAME = "ukd"
    # Softmax temperature T (Hinton et al. 2015); divergences are multiplied by T². MMA's UKD: T = 1.
    cfg.MODEL.YKD.KD_CLS.TEMPERATURE = 1.0
    # Reduction over ROIs (over images for rdist and per-image sinkd): "mean" or "sum".
    cfg.MODEL.YKD.KD_CLS.REDUCTION = "mean"
    # Class-space adapter from the student's {old, new, bg} to the teacher's {old, bg}: "slice" (keep old
    # and bg columns; ILOD), "fold" (new classes folded into bg; MMA), "none"; "" = the loss's default
    # ("fold"; "slice" for l2; "none" for ukd, which folds itself, and for rdist and uskd).
    cfg.MODEL.YKD.KD_CLS.ADAPTER = ""

    cfg.MODEL.YKD.KD_CLS.SKEW = CN()
    # Skew λ of skew_kl / skew_rkl (DistiLLM, Ko et al. 2024: α = 0.1).
    cfg.MODEL.YKD.KD_CLS.SKEW.LAMBDA = 0.1

    cfg.MODEL.YKD.KD_CLS.BDKD = CN()
    # BD-KD (Amara et al. 2022) weight of the reverse KL from the entropy gap H(student) - H(teacher):
    # "hard" (reverse KL where the student is less confident, forward KL elsewhere) or "smooth" (sigmoid).
    cfg.MODEL.YKD.KD_CLS.BDKD.WEIGHTING = "hard"
    # Entropy gap (nats) counting as one unit for the weighting (only "smooth" depends on it).
    cfg.MODEL.YKD.KD_CLS.BDKD.GAP_SCALE = 1.0

    cfg.MODEL.YKD.KD_CLS.SINKD = CN()
    # Entropic regularisation ε of the Sinkhorn transport cost (SinKD, Cui et al. 2024: 0.1).
    cfg.MODEL.YKD.KD_CLS.SINKD.EPS = 0.1
    # Number of Sinkhorn iterations (SinKD: 20).
    cfg.MODEL.YKD.KD_CLS.SINKD.ITERS = 20
    # Weight of a forward-KL term added to the Sinkhorn cost (0 = Sinkhorn alone).
    cfg.MODEL.YKD.KD_CLS.SINKD.KL_WEIGHT = 0.0
    # Transport between the ROIs of each image: SinKD's minibatch of tens of samples is here the
    # tens of distillation ROIs of one input, at a cost O(sum R_i²) instead of the batch's O(R²).
    cfg.MODEL.YKD.KD_CLS.SINKD.PER_IMAGE = True

    cfg.MODEL.YKD.KD_CLS.NKD = CN()
    # Weight γ of NKD's normalised non-target term (Yang et al. 2023: γ = 1.5); NKD's λ is TEMPERATURE.
    cfg.MODEL.YKD.KD_CLS.NKD.GAMMA = 1.5

    cfg.MODEL.YKD.KD_CLS.USKD = CN()
    # Weight α of USKD's soft target term (Yang et al. 2023: 1.0).
    cfg.MODEL.YKD.KD_CLS.USKD.ALPHA = 1.0
    # Weight β of USKD's Zipf non-target term (Yang et al. 2023: 0.1).
    cfg.MODEL.YKD.KD_CLS.USKD.BETA = 0.1

    cfg.MODEL.YKD.KD_CLS.DKD = CN()
    # Weight α of DKD's target-class term TCKD (Zhao et al. 2022: 1.0).
    cfg.MODEL.YKD.KD_CLS.DKD.ALPHA = 1.0
    # Weight β of DKD's non-target-class term NCKD (Zhao et al. 2022: 8.0 on CIFAR-100).
    cfg.MODEL.YKD.KD_CLS.DKD.BETA = 8.0


def _add_interactive_config(cfg: CN) -> None:
    # Interactive feature KD after Talking Models (Zhao et al. 2023) on the box head's features of the
    # distillation ROIs (ykd/distillation/interactive.py); off unless a weight is > 0.
    cfg.MODEL.YKD.INTERACTIVE = CN()
    # Width M of the message space shared by the teacher's and the student's encoders.
    cfg.MODEL.YKD.INTERACTIVE.MESSAGE_DIM = 64
    # Hidden layer widths of each encoder and decoder MLP ([] = one linear layer).
    cfg.MODEL.YKD.INTERACTIVE.HIDDEN_DIMS = [256]
    # Temperature T of the two KL terms (teacher-to-student, student-to-teacher).
    cfg.MODEL.YKD.INTERACTIVE.TEMPERATURE = 1.0
    # Weights of the terms (their form is ours: the paper's abstract leaves it open).
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS = CN()
    # loss_kd_int_rec: each side's features reconstructed through its own encoder and decoder.
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS.RECONSTRUCTION = 0.0
    # loss_kd_int_msg: agreement (MSE) of the teacher's and the student's messages.
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS.AGREEMENT = 0.0
    # loss_kd_int_t2s: the student's head on the decoded teacher message matches the teacher's logits.
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS.TEACHER_TO_STUDENT = 0.0
    # loss_kd_int_s2t: the teacher's frozen head on the decoded student message matches the student.
    cfg.MODEL.YKD.INTERACTIVE.WEIGHTS.STUDENT_TO_TEACHER = 0.0


def _add_stages_config(cfg: CN) -> None:
    # Loss-weight stages of an incremental step (steps >= 1), e.g. LLaVA-KD's distilled pre-training,
    # supervised fine-tuning, distilled fine-tuning (Cai et al. 2024): a list of
    # [fraction of SOLVER.MAX_ITER, {loss name or prefix: weight}], fractions summing to 1. Each loss
    # gets the weight of its longest matching key, 1 if none matches; e.g.
    # [[0.2, {"loss": 0.0, "loss_kd": 1.0}], [0.3, {"loss_kd": 0.0}], [0.5, {}]]. [] = off
    # (ykd/engine/stage_schedule.py).
    cfg.MODEL.YKD.STAGES = []
