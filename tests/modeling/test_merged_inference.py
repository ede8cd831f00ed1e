"""Dynamic Y-KD inference (ykd/modeling/meta_arch/merged_inference.py) on tiny CPU models."""

import pytest
import torch
from detectron2.modeling import build_model


@pytest.mark.parametrize("arch", ["fpn", "c4"])
def test_one_rpn_for_all_modules_pools_once_with_the_same_detections(arch, make_cfg, make_inputs):
    """INFERENCE.RPN latest pools the shared proposals once for every module; the detections are
    those of each module pooling them itself (per_task with every module given the last RPN)."""
    cfg = make_cfg(arch, classes_per_task=[3, 2, 1])
    cfg.TEST.DETECTIONS_PER_IMAGE = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = make_inputs([[0], [1, 4]], seed=2)
    pools = []
    for module in model.task_modules:
        module.roi_heads.pool = _counted(module.roi_heads.pool, pools)
    with torch.no_grad():
        model.inference_rpn = "latest"
        shared = model(inputs)
        pools_shared, pools[:] = len(pools), []
        last_rpn = model.task_modules[-1].proposal_generator
        for module in model.task_modules:
            module.proposal_generator = last_rpn
        model.inference_rpn = "per_task"
        separate = model(inputs)
    assert len(pools) - pools_shared == 2  # 1 pooling of the boxes instead of 3 (C4: + masks')
    for s, e in zip(shared, separate, strict=True):
        s, e = s["instances"], e["instances"]
        assert len(e) > 0 and set(e.pred_classes.tolist()) - {0, 1, 2}
        for field in ("pred_classes", "scores", "pred_masks"):
            assert torch.equal(s.get(field), e.get(field)), field
        assert torch.equal(s.pred_boxes.tensor, e.pred_boxes.tensor)


def _counted(pool, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return pool(*args, **kwargs)

    return counted
