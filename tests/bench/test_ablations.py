"""Dynamic Y-KD's ablations on the dev split (bench/ablations.py), on the instant schedule."""

import json
import os

import pytest
import torch

from tests.conftest import load_tool
from tests.engine.conftest import instant_opts

ablations = load_tool("ablations", "bench")


def test_kd_weights_are_only_ablated_where_a_step_adds_several_classes():
    assert "kd_cls0.5" in [v.name for v in ablations.variants_of("15-5", ablations.QUESTIONS)]
    one_class = [v.name for v in ablations.variants_of("15-1", ablations.QUESTIONS)]
    assert "kd_cls0.5" not in one_class and one_class[0] == "default"
    assert "rpn_latest" in one_class and "trunk_frozen" in one_class
    chosen = ablations.variants_of("15-5", ["trunk", "inference"], ["trunk_frozen", "kd_cls0.5"])
    assert [v.name for v in chosen] == ["default", "trunk_frozen"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablations")
    opts = instant_opts(str(root))
    index = opts.index("CONTINUAL.OUTPUT_ROOT")
    del opts[index : index + 2]
    opts += ["SYNTHETIC.NUM_DEV", "6"]
    argv = ["--scenarios", "10-10", "--questions", "trunk", "averaging", "--seeds", "1"]
    argv += ["--output-root", str(root / "out"), "--results-dir", str(root / "results")]
    ablations.main(argv + ["--jobs", "1"] + opts)
    return root


def test_the_table_has_every_variant_with_its_paired_difference(finished):
    record = json.loads((finished / "results" / "ablations_10-10.json").read_text())
    rows = record["variants"]
    expected = ["default", "trunk_lr0.1", "trunk_frozen", "trunk_norm_frozen", "trunk_kd"]
    expected.append("alpha0.25")
    assert set(expected) <= set(rows) and "rpn_latest" not in rows
    assert rows["default"]["delta_all"] is None
    for name in expected[1:]:
        row = rows[name]
        assert row["seeds"] == [0]
        assert row["delta_all"]["mean"] == pytest.approx(
            row["all"]["mean"] - rows["default"]["all"]["mean"]
        )
    assert "DEV split" in (finished / "results" / "ablations_10-10.md").read_text()


def test_dev_evaluations_are_apart_from_the_test_ones(finished):
    step = finished / "out" / "synthetic" / "10-10" / "dynamic_ykd_seed0" / "step1"
    test = json.loads((step / "eval.json").read_text())
    dev = json.loads((step / "eval_dev" / "eval.json").read_text())
    assert test != dev
    assert (step / "ablations" / "alpha0.25" / "eval_dev" / "eval.json").is_file()
    assert not (step / "ablations" / "alpha0.25" / "model.pth").exists()


def test_the_frozen_trunk_run_ends_with_the_step0_trunk(finished):
    tree = finished / "out" / "synthetic" / "10-10"
    step0 = torch.load(tree / "dynamic_ykd_trunk_frozen_seed0" / "step0" / "model_final.pth")
    step1 = torch.load(tree / "dynamic_ykd_trunk_frozen_seed0" / "step1" / "model_final.pth")
    trunk = [k for k in step0["model"] if k.startswith("backbone.")]
    assert trunk
    for key in trunk:
        assert torch.equal(step0["model"][key], step1["model"][key]), key
    moved = torch.load(tree / "dynamic_ykd_trunk_lr0.1_seed0" / "step1" / "model_final.pth")
    moved = moved["model"]
    assert any(not torch.equal(step0["model"][k], moved[k]) for k in trunk)
    assert os.path.realpath(tree / "dynamic_ykd_seed0" / "step0") == os.path.realpath(
        tree / "dynamic_ykd_trunk_frozen_seed0" / "step0"
    )
