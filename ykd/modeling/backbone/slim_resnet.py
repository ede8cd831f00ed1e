"""A slim ResNet (+FPN) for CPU training from scratch on small images."""

from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem


def build_slim_resnet(
    *,
    in_channels: int,
    stem_out_channels: int,
    stage_out_channels: list[int],
    num_blocks: list[int],
    norm: str,
    out_features: list[str],
    freeze_at: int = 0,
) -> ResNet:
    """
    A ResNet of BasicBlocks with free stage widths: Detectron2's ResNet-18/34 builder requires
    ``RES2_OUT_CHANNELS == 64``, too wide for 2-core CPU training.

    Args:
        in_channels: image channels.
        stem_out_channels: output channels of the stride-4 stem.
        stage_out_channels: output channels of res2..res5 (strides 4, 8, 16, 32).
        num_blocks: BasicBlocks per stage.
        norm: normalisation of every conv ("BN", "GN", "SyncBN", ...).
        out_features: names of the returned feature maps, e.g. ["res2", "res3", "res4", "res5"].
        freeze_at: number of leading stages (stem = 1) to freeze.
    """
    if len(stage_out_channels) != 4 or len(num_blocks) != 4:
        raise ValueError(
            "MODEL.SLIM_RESNET.STAGE_OUT_CHANNELS and NUM_BLOCKS need 4 entries (res2..res5),"
            f" got {list(stage_out_channels)} and {list(num_blocks)}."
        )
    widths = [stem_out_channels, *stage_out_channels]
    if any(widths[i] == widths[i + 1] for i in range(1, 4)):
        # BasicBlock only projects its shortcut when the width changes: a stride-2 stage must too.
        raise ValueError(
            "MODEL.SLIM_RESNET.STAGE_OUT_CHANNELS must change width at every stride-2 stage"
            f" (res3..res5), got {list(stage_out_channels)}: e.g. [32, 64, 128, 256]."
        )
    stem = BasicStem(in_channels=in_channels, out_channels=stem_out_channels, norm=norm)
    stages = []
    channels = stem_out_channels
    for index, (out_channels, blocks) in enumerate(
        zip(stage_out_channels, num_blocks, strict=True)
    ):
        first_stride = 1 if index == 0 else 2
        stages.append(
            ResNet.make_stage(
                BasicBlock,
                blocks,
                in_channels=channels,
                out_channels=out_channels,
                stride_per_block=[first_stride] + [1] * (blocks - 1),
                norm=norm,
            )
        )
        channels = out_channels
    return ResNet(stem, stages, out_features=out_features).freeze(freeze_at)


@BACKBONE_REGISTRY.register()
def build_slim_resnet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """
    Slim ResNet + FPN (with Detectron2's FPN and max-pool top block), configured by
    ``MODEL.SLIM_RESNET.*``, ``MODEL.RESNETS.{NORM,OUT_FEATURES}`` and ``MODEL.FPN.*``.
    """
    bottom_up = build_slim_resnet(
        in_channels=input_shape.channels,
        stem_out_channels=cfg.MODEL.SLIM_RESNET.STEM_OUT_CHANNELS,
        stage_out_channels=cfg.MODEL.SLIM_RESNET.STAGE_OUT_CHANNELS,
        num_blocks=cfg.MODEL.SLIM_RESNET.NUM_BLOCKS,
        norm=cfg.MODEL.RESNETS.NORM,
        out_features=cfg.MODEL.RESNETS.OUT_FEATURES,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
