from .ykd_rcnn import YKDRCNN, config_of_task

__all__ = ["YKDRCNN", "config_of_task"]
