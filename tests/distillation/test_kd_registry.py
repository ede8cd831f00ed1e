"""The KD loss registry, its config, the class-space adapters and the one-line input errors."""

import ast
import os
import subprocess
import sys

import kd_reference as ref
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg

from ykd.config import add_ykd_config
from ykd.distillation import (
    KD_LOSS_REGISTRY,
    Registry,
    adapt_class_space,
    adapt_targets,
    add_kd_config,
    build_kd_loss,
    build_kd_loss_from_cfg,
)
from ykd.distillation import functional as KF

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "ykd")
DOCUMENTED_LOSSES = {
    "kl", "rkl", "js", "tv", "skew_kl", "skew_rkl", "bdkd", "sinkd", "nkd", "uskd", "dkd", "mdist",
    "rdist", "ukd", "l2",
}  # fmt: skip


def _kd_cfg(name, **options):
    cfg = get_cfg()
    add_ykd_config(cfg)
    add_kd_config(cfg)
    cfg.MODEL.YKD.KD_CLS.NAME = name
    for key, value in options.items():
        node = cfg.MODEL.YKD.KD_CLS
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return cfg.MODEL.YKD.KD_CLS


def _roi_inputs(rows=8, num_old=3, num_new=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(rows, num_old + num_new + 1, generator=g, requires_grad=True)
    teacher = torch.randn(rows, num_old + 1, generator=g)
    targets = torch.randint(0, num_old + num_new + 1, (rows,), generator=g)
    return student, teacher, targets


def test_registry_holds_the_documented_losses():
    assert set(KD_LOSS_REGISTRY) == DOCUMENTED_LOSSES
    assert len(KD_LOSS_REGISTRY) == len(DOCUMENTED_LOSSES)


@pytest.mark.parametrize("name", sorted(DOCUMENTED_LOSSES))
def test_every_loss_builds_from_config_and_runs_on_roi_heads(name):
    loss_fn = build_kd_loss_from_cfg(_kd_cfg(name))
    student, teacher, targets = _roi_inputs()
    value = loss_fn(student, teacher, targets=targets, num_rois_per_image=4)
    value.backward()
    assert value.shape == () and torch.isfinite(value)
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_config_options_reach_the_loss():
    loss_fn = build_kd_loss_from_cfg(
        _kd_cfg("dkd", TEMPERATURE=4.0, REDUCTION="sum", ADAPTER="slice", **{"DKD.BETA": 2.0})
    )
    assert (loss_fn.temperature, loss_fn.reduction, loss_fn.adapter) == (4.0, "sum", "slice")
    assert loss_fn.options == {"alpha": 1.0, "beta": 2.0}
    sinkd = build_kd_loss_from_cfg(_kd_cfg("sinkd", **{"SINKD.EPS": 0.5, "SINKD.ITERS": 7}))
    assert sinkd.options["eps"] == 0.5 and sinkd.options["iters"] == 7
    assert (
        build_kd_loss_from_cfg(_kd_cfg("skew_rkl", **{"SKEW.LAMBDA": 0.3})).options["skew"] == 0.3
    )


def test_default_adapters():
    adapters = {name: build_kd_loss(name).adapter for name in KD_LOSS_REGISTRY}
    assert adapters["kl"] == "fold" and adapters["l2"] == "slice"
    assert adapters["ukd"] == adapters["rdist"] == adapters["uskd"] == "none"


def test_default_config_is_mma_ukd():
    loss_fn = build_kd_loss_from_cfg(_kd_cfg("ukd"))
    student, teacher, _ = _roi_inputs()
    expected = ref.ukd(student.detach().double().numpy(), teacher.double().numpy()).mean()
    assert loss_fn(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_fold_adapter_sums_new_and_background_probabilities():
    student, teacher, _ = _roi_inputs(seed=1)
    s, t = student.detach().double(), teacher.double()
    for temperature in (1.0, 3.0):
        value = build_kd_loss("kl", adapter="fold", temperature=temperature)(s, t)
        # KL at T between the teacher and the student's folded distribution at T.
        folded = ref.fold(s.numpy() / temperature, 4)
        expected = temperature**2 * ref.kl(folded, t.numpy() / temperature).mean()
        assert value.item() == pytest.approx(expected, rel=1e-10)
    # UKD has the same folding built in: a soft cross-entropy with the folded student, over Kt.
    ukd = KF.ukd_loss(s, t, reduction="none")
    cross_entropy = -(ref.softmax(t.numpy()) * ref.fold(s.numpy(), 4)).sum(axis=1) / 4
    np.testing.assert_allclose(ukd.numpy(), cross_entropy, rtol=1e-10)


def test_slice_adapter_keeps_old_and_background_columns():
    student, teacher, _ = _roi_inputs(seed=2)
    s, t = student.detach().double(), teacher.double()
    sliced = adapt_class_space(s, 4, "slice")
    np.testing.assert_array_equal(sliced.numpy(), ref.slice_(s.numpy(), 4))
    value = build_kd_loss("l2")(s, t)
    assert value.item() == pytest.approx(ref.l2(ref.slice_(s.numpy(), 4), t.numpy()).mean())


def test_adapters_map_targets_to_the_teacher_space():
    targets = torch.tensor([0, 2, 3, 5, 6])  # 3 old classes, new 3..5, bg 6
    assert adapt_targets(targets, 4, "fold").tolist() == [0, 2, 3, 3, 3]
    assert adapt_targets(targets, 4, "none").tolist() == targets.tolist()
    student, teacher, _ = _roi_inputs(rows=5, seed=3)
    via_module = build_kd_loss("nkd", adapter="fold")(student, teacher, targets=targets)
    direct = KF.nkd_loss(
        adapt_class_space(student, 4, "fold"), teacher, targets=targets.clamp(max=3)
    )
    torch.testing.assert_close(via_module, direct)


def test_distils_a_plain_classifier_without_adapter():
    logits = torch.randn(16, 10)
    loss_fn = build_kd_loss("kl", temperature=4.0, adapter="none")
    assert loss_fn(logits, logits).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: build_kd_loss("focal"), "Unknown KD loss 'focal'; registered: bdkd, dkd, js, kl"),
        (lambda: build_kd_loss("kl", temperature=-1.0), "temperature must be > 0, got -1.0"),
        (lambda: build_kd_loss("kl", reduction="max"), "reduction must be one of"),
        (lambda: build_kd_loss("kl", adapter="crop"), "adapter must be one of"),
        (
            lambda: build_kd_loss("ukd", adapter="slice"),
            "UKDLoss: adapter must be one of ('none',)",
        ),
        (
            lambda: KF.kl_loss(torch.zeros(3, 4), torch.zeros(2, 4)),
            "different numbers of rows (R=3 vs 2)",
        ),
        (
            lambda: build_kd_loss("kl", adapter="none")(torch.zeros(3, 4), torch.zeros(3, 6)),
            "kl: the teacher has more classes than the student (Kt=6 > Ks=4)",
        ),
        (
            lambda: build_kd_loss("kl", adapter="fold")(torch.zeros(3, 4), torch.zeros(3, 6)),
            "the teacher's Kt=6 classes must be at least the background and at most the student's Ks=4",
        ),
        (
            lambda: KF.js_loss(torch.zeros(3, 6), torch.zeros(3, 4)),
            "js: student has Ks=6 classes and teacher Kt=4; align them with a class-space adapter",
        ),
        (lambda: KF.ukd_loss(torch.zeros(3, 4), torch.zeros(3, 6)), "ukd: the student needs"),
        (
            lambda: KF.kl_loss(torch.zeros(3, 4), torch.zeros(3, 4), temperature=-2.0),
            "kl: temperature",
        ),
        (
            lambda: KF.uskd_loss(torch.zeros(3, 4), torch.zeros(3, 4), temperature=2.0),
            "no temperature",
        ),
        (lambda: KF.skew_kl_loss(torch.zeros(3, 4), torch.zeros(3, 4), skew=1.5), "skew lambda"),
        (
            lambda: KF.bdkd_loss(torch.zeros(3, 4), torch.zeros(3, 4), weighting="soft"),
            "unknown weighting",
        ),
        (lambda: KF.sinkd_loss(torch.zeros(3, 4), torch.zeros(3, 4), eps=0.0), "eps must be > 0"),
        (
            lambda: KF.rdist_loss(torch.zeros(5, 4), torch.zeros(5, 4), num_rois_per_image=[2, 2]),
            "does not add up to the R=5 rows",
        ),
        (
            lambda: KF.dkd_loss(torch.zeros(2, 4), torch.zeros(2, 4), targets=torch.tensor([0, 4])),
            "dkd: targets must lie in [0, 4)",
        ),
        (lambda: KF.kl_loss(torch.zeros(4), torch.zeros(4)), "expected 2-D logits (R, K)"),
    ],
)
def test_bad_input_gives_one_line_error(call, message):
    with pytest.raises((ValueError, KeyError)) as info:
        call()
    text = info.value.args[0]
    assert message in text and "\n" not in text


def test_registry_rejects_duplicates():
    registry = Registry("thing")

    @registry.register()
    def a():
        pass

    with pytest.raises(KeyError, match="'a' is already registered"):
        registry.register("a")(lambda: None)
    assert registry.get("a") is a and "a" in registry and list(registry) == ["a"]


def test_package_imports_only_torch():
    allowed = {"torch", "math", "collections", "dataclasses", "typing", "__future__"}
    for root, _, files in os.walk(os.path.join(PACKAGE_DIR, "distillation")):
        for file in files:
            if file.endswith(".py"):
                tree = ast.parse(open(os.path.join(root, file)).read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        modules = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        modules = [node.module]
                    else:
                        continue
                    assert {m.split(".")[0] for m in modules} <= allowed, (file, modules)


def test_package_works_without_detectron2():
    # Load ykd.distillation under a bare parent package, so that ykd/__init__.py does not run.
    code = (
        "import sys, types; ykd = types.ModuleType('ykd'); ykd.__path__ = [sys.argv[1]]; "
        "sys.modules['ykd'] = ykd; import torch; from ykd.distillation import build_kd_loss; "
        "print(build_kd_loss('kl')(torch.zeros(2, 3), torch.zeros(2, 3)).item()); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('detectron2', 'yacs', 'fvcore')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, PACKAGE_DIR], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0.0", "[]"]
