from .slim_resnet import build_slim_resnet, build_slim_resnet_fpn_backbone

__all__ = ["build_slim_resnet", "build_slim_resnet_fpn_backbone"]
