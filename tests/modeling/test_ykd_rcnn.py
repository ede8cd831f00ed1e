"""Training, growth and inference of YKDRCNN on tiny CPU models."""

import copy

import pytest
import torch
from detectron2.modeling import build_backbone, build_model
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage

from ykd.modeling import YKDRCNN, TaskModule, UniqueMaskHead, YKDDistiller, config_of_task

SUPERVISED = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
KD = {"loss_kd_cls", "loss_kd_box", "loss_kd_mask", "loss_kd_rpn"}


def train_step(model, inputs, optimizer=None) -> dict:
    model.train()
    with EventStorage():
        losses = model(inputs)
        total = sum(losses.values())
        assert torch.isfinite(total)
        if optimizer is not None:
            optimizer.zero_grad()
        total.backward()
        if optimizer is not None:
            optimizer.step()
    return losses


def build(cfg) -> YKDRCNN:
    torch.manual_seed(0)
    return build_model(cfg)


def test_build_from_config(make_cfg):
    model = build(make_cfg(classes_per_task=[3, 2]))
    assert isinstance(model, YKDRCNN)
    assert model.num_classes_per_task == [3, 2]
    assert model.mask_head.head.predictor.out_channels == 5
    assert not any(p.requires_grad for p in model.task_modules[0].parameters())
    assert all(p.requires_grad for p in model.task_modules[1].parameters())
    assert model.teacher_mask_head is not None and model.teacher_backbone is None
    assert not model.train().task_modules[0].training
    cfg = make_cfg(classes_per_task=[3, 2])
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 4
    with pytest.raises(ValueError, match="sums to 5"):
        build_model(cfg)


def test_build_from_kwargs(make_cfg, make_inputs):
    cfg = make_cfg()
    backbone = build_backbone(cfg)
    module = TaskModule(config_of_task(cfg, 0), backbone.output_shape())
    model = YKDRCNN(
        backbone=backbone,
        task_modules=[module],
        mask_head=UniqueMaskHead(cfg, backbone.output_shape(), roi_heads=module.roi_heads),
        distiller=YKDDistiller(kd_cls_loss=None, loss_weights={"loss_kd_box": 1.0}),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
    )
    assert set(train_step(model, make_inputs([[0, 2]]))) == SUPERVISED
    model.add_task(2)
    assert set(train_step(model, make_inputs([[3]]))) == SUPERVISED | {"loss_kd_box"}


@pytest.mark.parametrize("arch", ["fpn", "c4"])
def test_train_steps_0_1_2(arch, make_cfg, make_inputs):
    model = build(make_cfg(arch))
    assert set(train_step(model, make_inputs([[0, 1], [2]]))) == SUPERVISED
    for new_classes, step_inputs in ((2, [[3], [4, 3]]), (1, [[5], [5]])):
        model.add_task(new_classes)
        losses = train_step(model, make_inputs(step_inputs))
        assert set(losses) == SUPERVISED | KD
        student, frozen = model.task_modules[-1], model.frozen_modules()
        assert all(p.grad is not None for p in student.parameters())
        assert all(p.grad is None for m in frozen for p in m.parameters())
    assert model.num_classes_per_task == [3, 2, 1]


def test_finetuning_never_runs_the_teacher(make_cfg, make_inputs):
    cfg = make_cfg(classes_per_task=[3, 2])
    for key in ("CLS", "BOX", "MASK", "RPN"):
        cfg.MODEL.YKD.KD_WEIGHTS[key] = 0.0
    model = build(cfg)
    calls = []
    model.task_modules[0].register_forward_pre_hook(lambda *_: calls.append(1))
    for submodule in model.task_modules[0].modules():
        submodule.register_forward_pre_hook(lambda *_: calls.append(1))
    assert set(train_step(model, make_inputs([[3, 4]]))) == SUPERVISED
    assert calls == [] and model.teacher_mask_head is None


def test_frozen_modules_are_bit_identical_after_optimizer_steps(make_cfg, make_inputs):
    cfg = make_cfg(classes_per_task=[3, 2, 1])
    cfg.MODEL.YKD.TEACHER = "separate"
    cfg.SOLVER.BASE_LR, cfg.SOLVER.MOMENTUM, cfg.SOLVER.WEIGHT_DECAY = 0.1, 0.9, 1e-2
    model = build(cfg)
    before = [copy.deepcopy(m.state_dict()) for m in model.frozen_modules()]
    student_before = copy.deepcopy(model.task_modules[-1].state_dict())
    optimizer = build_optimizer(cfg, model)
    for _ in range(2):
        train_step(model, make_inputs([[5], [5]]), optimizer)
    assert len(before) == 4  # modules 0 and 1, teacher trunk, teacher mask head
    for module, state in zip(model.frozen_modules(), before, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key]), key
    after = model.task_modules[-1].state_dict()
    assert not torch.equal(
        after["roi_heads.box_predictor.cls_score.weight"],
        student_before["roi_heads.box_predictor.cls_score.weight"],
    )


@pytest.mark.parametrize("teacher", ["shared", "separate"])
def test_trunk_runs_once_per_iteration(teacher, make_cfg, make_inputs):
    cfg = make_cfg(classes_per_task=[3, 2])
    cfg.MODEL.YKD.TEACHER = teacher
    model = build(cfg)
    calls = {"trunk": 0, "teacher_trunk": 0}
    model.backbone.register_forward_hook(lambda *_: calls.__setitem__("trunk", calls["trunk"] + 1))
    if teacher == "separate":
        model.teacher_backbone.register_forward_hook(
            lambda *_: calls.__setitem__("teacher_trunk", calls["teacher_trunk"] + 1)
        )
    train_step(model, make_inputs([[3], [4]]))
    assert calls == {"trunk": 1, "teacher_trunk": int(teacher == "separate")}


@pytest.mark.parametrize("arch", ["fpn", "c4"])
def test_teacher_outputs_carry_no_gradient(arch, make_cfg, make_inputs):
    model = build(make_cfg(arch, classes_per_task=[3, 2]))
    grads = []
    teacher_parts = [
        model.task_modules[0].proposal_generator.rpn_head,
        model.task_modules[0].roi_heads.box_predictor,
        model.teacher_mask_head.head,
    ]
    for part in teacher_parts:
        part.register_forward_hook(
            lambda _m, _i, out: grads.extend(t.requires_grad for t in _flatten(out))
        )
    train_step(model, make_inputs([[3], [4]]))
    assert grads and not any(grads)


def _flatten(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for o in outputs for t in _flatten(o)]


@pytest.mark.parametrize("init", ["default", "mib"])
def test_grown_predictor_keeps_old_rows(init, make_cfg):
    cfg = make_cfg()
    cfg.MODEL.YKD.INIT_NEW_CLASSES = init
    model = build(cfg)
    old_cls = copy.deepcopy(model.task_modules[0].box_predictor.cls_score)
    old_box = copy.deepcopy(model.task_modules[0].box_predictor.bbox_pred)
    old_mask = copy.deepcopy(model.mask_head.head.predictor)
    model.add_task(2)
    new = model.task_modules[1].box_predictor
    assert new.cls_score.weight.shape == (6, old_cls.in_features)
    assert torch.equal(new.cls_score.weight[:3], old_cls.weight[:3])
    assert torch.equal(new.cls_score.weight[-1], old_cls.weight[-1])
    assert torch.equal(new.cls_score.bias[:3], old_cls.bias[:3])
    assert torch.equal(new.bbox_pred.weight[:12], old_box.weight)
    assert torch.equal(model.mask_head.head.predictor.weight[:3], old_mask.weight)
    assert model.mask_head.head.predictor.out_channels == 5
    features = torch.randn(7, old_cls.in_features)
    old_probs = old_cls(features).softmax(dim=1)
    new_probs = new.cls_score(features).softmax(dim=1)
    if (
        init == "mib"
    ):  # new classes and bg share the old bg probability evenly, old classes keep theirs
        assert torch.allclose(new_probs[:, :3], old_probs[:, :3], atol=1e-6)
        assert torch.allclose(new_probs[:, 3:], old_probs[:, 3:].expand(-1, 3) / 3, atol=1e-6)
    else:
        assert torch.equal(new.cls_score.bias[3:5], torch.zeros(2))


@pytest.mark.parametrize("scores", ["slice", "renormalise"])
@pytest.mark.parametrize("classes_per_task", [[3], [3, 2], [3, 2, 1]])
def test_inference_keeps_each_module_to_its_task(classes_per_task, scores, make_cfg, make_inputs):
    cfg = make_cfg(classes_per_task=classes_per_task)
    cfg.MODEL.YKD.INFERENCE.SCORES = scores
    cfg.TEST.DETECTIONS_PER_IMAGE = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 10
    model = build(cfg).eval()
    expected_score, owner = {}, {}
    start = 0
    for j, module in enumerate(model.task_modules):
        # Constant logits: 0 for every class, -j for bg, so each module has its own score value.
        predictor = module.box_predictor
        with torch.no_grad():
            predictor.cls_score.weight.zero_()
            predictor.cls_score.bias.zero_()
            predictor.cls_score.bias[-1] = -j
        num_own = module.num_classes - start
        denominator = (module.num_classes if scores == "slice" else num_own) + torch.exp(
            torch.tensor(-float(j))
        )
        expected_score[j] = 1.0 / denominator
        owner.update({c: j for c in range(start, module.num_classes)})
        start = module.num_classes
    with torch.no_grad():
        instances = model(make_inputs([[0], [1]]))[0]["instances"]
    assert len(instances) > 0 and instances.has("pred_masks")
    classes = instances.pred_classes.tolist()
    assert {owner[c] for c in classes} == set(range(len(classes_per_task)))
    for c, s in zip(classes, instances.scores, strict=True):
        assert s.item() == pytest.approx(expected_score[owner[c]].item(), rel=1e-5)
    model.inference_modules = "latest"
    with torch.no_grad():
        latest = model(make_inputs([[0], [1]]))[0]["instances"]
    assert torch.allclose(
        latest.scores,
        1.0 / (sum(classes_per_task) + torch.exp(torch.tensor(1.0 - len(classes_per_task)))),
    )


@pytest.mark.parametrize("arch", ["fpn", "c4"])
def test_empty_image_trains_and_infers(arch, make_cfg, make_inputs):
    model = build(make_cfg(arch))
    train_step(model, make_inputs([[], []]))
    model.add_task(2)
    assert set(train_step(model, make_inputs([[], [3]]))) == SUPERVISED | KD
    for module in model.task_modules:  # no proposal at all, for the teacher nor at inference
        module.proposal_generator.post_nms_topk = {True: 0, False: 0}
    assert set(train_step(model, make_inputs([[], []]))) == SUPERVISED | KD
    with torch.no_grad():
        outputs = model.eval()(make_inputs([[], []]))
    assert [len(o["instances"]) for o in outputs] == [0, 0]
    assert outputs[0]["instances"].pred_masks.shape[1:] == (64, 64)


def test_old_module_detections_equal_the_step0_model(make_cfg, make_inputs):
    cfg = make_cfg()
    cfg.TEST.DETECTIONS_PER_IMAGE = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    step0 = build(cfg)
    train_step(step0, make_inputs([[0, 1], [2]]))  # non-trivial trunk statistics and weights
    step1 = copy.deepcopy(step0)
    step1.add_task(2)
    inputs = make_inputs([[0], [1, 2]], seed=3)
    with torch.no_grad():
        expected = step0.eval()(inputs)
        found = step1.eval()(inputs)
    for e, f in zip(expected, found, strict=True):
        e, f = e["instances"], f["instances"]
        f = f[f.pred_classes < 3]
        e, f = e[e.scores.argsort(stable=True)], f[f.scores.argsort(stable=True)]
        assert len(e) > 0
        assert torch.equal(e.pred_classes, f.pred_classes)
        assert torch.equal(e.scores, f.scores)
        assert torch.equal(e.pred_boxes.tensor, f.pred_boxes.tensor)
        assert torch.equal(e.pred_masks, f.pred_masks)


def test_distributed_data_parallel_with_frozen_modules(tmp_path, make_cfg, make_inputs):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        model = DistributedDataParallel(build(make_cfg(classes_per_task=[3, 2])))
        for seed in range(2):  # a second iteration fails if a trainable parameter got no gradient
            losses = train_step(model, make_inputs([[3], [4]], seed=seed))
            assert set(losses) == SUPERVISED | KD
    finally:
        dist.destroy_process_group()


def test_one_module_alone_detects_its_own_task(make_cfg):
    cfg = make_cfg(classes_per_task=[3, 2])
    cfg.MODEL.YKD.INFERENCE.MODULES = "module1"
    model = build_model(cfg)
    ((module, classes),) = model.detectors()
    assert module is model.task_modules[1] and classes == (3, 5)
    model.inference_modules = "module2"
    with pytest.raises(ValueError, match="is module2, but the model has 2 task modules"):
        model.detectors()
    cfg.MODEL.YKD.INFERENCE.MODULES = "module"
    with pytest.raises(ValueError, match="INFERENCE.MODULES must be one of"):
        build_model(cfg)
