"""A task module of Y-KD: the RPN and box ROI heads that learn one task (``docs/method.md``)."""

import copy

from detectron2.config import configurable
from detectron2.modeling.proposal_generator import build_proposal_generator
from detectron2.modeling.roi_heads import build_roi_heads
from torch import nn

from .fast_rcnn import TaskFastRCNNOutputLayers
from .roi_heads import TaskRes5ROIHeads, TaskStandardROIHeads
from .rpn import TaskRPN

__all__ = ["TaskModule", "freeze_"]


def freeze_(module: nn.Module) -> nn.Module:
    """
    Put ``module`` in eval mode with ``requires_grad=False`` and no ``.grad`` (out of the
    optimizer), in place.
    """
    for param in module.parameters():
        param.requires_grad_(False)
        param.grad = None
    return module.eval()


class TaskModule(nn.Module):
    """
    Task module j: an RPN (``proposal_generator``) and box ROI heads (``roi_heads``: RoI pooling,
    box head or res5, and a predictor over the classes of tasks 0..j, background last).
    """

    @configurable
    def __init__(self, *, proposal_generator: TaskRPN, roi_heads: nn.Module):
        """
        Args:
            proposal_generator: a :class:`TaskRPN`.
            roi_heads: :class:`TaskStandardROIHeads` (FPN) or :class:`TaskRes5ROIHeads` (C4).
        """
        super().__init__()
        if not isinstance(proposal_generator, TaskRPN) or not isinstance(
            roi_heads, (TaskStandardROIHeads, TaskRes5ROIHeads)
        ):
            raise ValueError(
                "YKDRCNN needs MODEL.PROPOSAL_GENERATOR.NAME 'TaskRPN' and MODEL.ROI_HEADS.NAME"
                " 'TaskStandardROIHeads' (FPN) or 'TaskRes5ROIHeads' (C4), got"
                f" {type(proposal_generator).__name__} and {type(roi_heads).__name__}."
            )
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads

    @classmethod
    def from_config(cls, cfg, input_shape):
        """``cfg`` is the config of the step that created the module (its classes, old classes)."""
        return {
            "proposal_generator": build_proposal_generator(cfg, input_shape),
            "roi_heads": build_roi_heads(cfg, input_shape),
        }

    @property
    def box_predictor(self) -> TaskFastRCNNOutputLayers:
        return self.roi_heads.box_predictor

    @property
    def num_classes(self) -> int:
        """Number of foreground classes of the predictor (all tasks up to this module's)."""
        return self.roi_heads.num_classes

    def grown(self, num_new_classes: int, *, init: str = "default") -> "TaskModule":
        """
        A deep copy of this module whose predictor is grown by ``num_new_classes`` classes (old
        rows copied; new rows initialised by ``init``, "default" or "mib").
        """
        new = copy.deepcopy(self).requires_grad_(True)
        new.box_predictor.expand_classes(num_new_classes, init=init)
        new.roi_heads.num_classes = new.box_predictor.num_classes
        return new
