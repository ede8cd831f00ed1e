"""Modeling of `ykd`: importing it registers the meta-architecture, heads and backbones."""

from . import backbone  # noqa: F401  (registration)
from .class_growth import grow_state_dict
from .distiller import YKDDistiller
from .fast_rcnn import TaskFastRCNNOutputLayers
from .mask_head import UniqueMaskHead
from .meta_arch import YKDRCNN, config_of_task
from .roi_heads import TaskRes5ROIHeads, TaskStandardROIHeads
from .rpn import TaskRPN
from .task_module import TaskModule

__all__ = [
    "YKDRCNN",
    "TaskFastRCNNOutputLayers",
    "TaskModule",
    "TaskRPN",
    "TaskRes5ROIHeads",
    "TaskStandardROIHeads",
    "UniqueMaskHead",
    "YKDDistiller",
    "config_of_task",
    "grow_state_dict",
]
