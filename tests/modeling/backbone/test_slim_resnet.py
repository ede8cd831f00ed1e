import pytest
import torch

from ykd.modeling.backbone import build_slim_resnet

FEATURES = ["res2", "res3", "res4", "res5"]


def test_feature_shapes_and_strides():
    model = build_slim_resnet(
        in_channels=3,
        stem_out_channels=16,
        stage_out_channels=[16, 24, 32, 48],
        num_blocks=[1, 2, 1, 1],
        norm="BN",
        out_features=FEATURES,
    )
    outputs = model(torch.zeros(2, 3, 64, 96))
    expected = {"res2": (16, 4), "res3": (24, 8), "res4": (32, 16), "res5": (48, 32)}
    for name, (channels, stride) in expected.items():
        assert outputs[name].shape == (2, channels, 64 // stride, 96 // stride)
        assert model.output_shape()[name].stride == stride


def test_freeze_at_freezes_the_stem():
    model = build_slim_resnet(
        in_channels=3,
        stem_out_channels=8,
        stage_out_channels=[8, 16, 24, 32],
        num_blocks=[1, 1, 1, 1],
        norm="BN",
        out_features=FEATURES,
        freeze_at=1,
    )
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.res2.parameters())


@pytest.mark.parametrize(
    "widths, blocks", [([8, 16, 16, 32], [1, 1, 1, 1]), ([8, 16, 24], [1, 1, 1])]
)
def test_bad_widths_are_a_clear_error(widths, blocks):
    with pytest.raises(ValueError, match="STAGE_OUT_CHANNELS"):
        build_slim_resnet(
            in_channels=3,
            stem_out_channels=8,
            stage_out_channels=widths,
            num_blocks=blocks,
            norm="BN",
            out_features=FEATURES,
        )
