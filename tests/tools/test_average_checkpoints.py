"""tools/average_checkpoints.py: writes a weights-only-loadable average, never overwrites an input."""

import json
import math
import os

import pytest
import torch

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts
from ykd.engine.cli import UsageError

tool = load_tool("average_checkpoints")

META = {
    "scenario": "2-1",
    "step": 1,
    "class_names": ["a", "b", "c"],
    "num_modules": 2,
    "num_classes_per_task": [2, 1],
}


def _save(path, backbone, head, counter):
    model = {
        "backbone.res2.conv.weight": torch.tensor([backbone]),
        "backbone.res2.norm.num_batches_tracked": torch.tensor(counter),
        "task_modules.0.head.weight": torch.tensor([head, 2 * head], dtype=torch.float16),
    }
    checkpoint = {"model": model, "ykd_meta": META, "iteration": 99, "optimizer": {"lr": 1.0}}
    torch.save(checkpoint, path)
    return os.fspath(path)


@pytest.fixture
def inputs(tmp_path):
    return [_save(tmp_path / "a.pth", 0.0, 4.0, 3), _save(tmp_path / "b.pth", 8.0, 8.0, 5)]


@pytest.mark.parametrize("subcommand", [[], ["average"]])
def test_writes_a_weights_only_checkpoint_recording_its_inputs(tmp_path, inputs, subcommand):
    output = os.fspath(tmp_path / "out" / "c.pth")
    argv = [*subcommand, "--inputs", *inputs, "--weights", "0.25", "0.75", "--output", output]
    assert tool.main(argv) == output
    checkpoint = torch.load(output, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"model", "ykd_meta", "averaging"}
    assert checkpoint["ykd_meta"] == META
    record = checkpoint["averaging"]
    assert record["inputs"] == inputs and record["weights"] == [0.25, 0.75]
    assert record["exclude"] == r"^backbone\." and record["class_rows"] == "shared"
    model = checkpoint["model"]
    assert torch.equal(model["backbone.res2.conv.weight"], torch.tensor([8.0]))
    assert torch.equal(model["backbone.res2.norm.num_batches_tracked"], torch.tensor(5))
    head = model["task_modules.0.head.weight"]
    assert head.dtype == torch.float16 and torch.equal(head, torch.tensor([7.0, 14.0]).half())
    assert os.listdir(tmp_path / "out") == ["c.pth"]


def test_empty_exclude_averages_the_trunk_too(tmp_path, inputs, capsys):
    output = os.fspath(tmp_path / "c.pth")
    tool.main(["--inputs", *inputs, "--weights", "1", "3", "--normalize", "--output", output])
    tool.main(["--inputs", *inputs, "--weights", ".5", ".5", "--exclude", "", "--output", output])
    model = torch.load(output, weights_only=True)["model"]
    assert torch.equal(model["backbone.res2.conv.weight"], torch.tensor([4.0]))
    assert "2 of 3 tensors averaged" in capsys.readouterr().out


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_refuses_to_overwrite_an_input(tmp_path, inputs, spelling, capsys):
    output = {
        "same": inputs[0],
        "dotted": os.path.join(tmp_path, "out", "..", "a.pth"),
        "link": os.fspath(tmp_path / "link.pth"),
    }[spelling]
    os.symlink(inputs[0], tmp_path / "link.pth")
    before = open(inputs[0], "rb").read()
    with pytest.raises(SystemExit) as exit:
        tool.main(["--inputs", *inputs, "--weights", "0.5", "0.5", "--output", output])
    assert exit.value.code == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert open(inputs[0], "rb").read() == before


def test_library_errors_are_one_line_exits_with_status_2(tmp_path, inputs, capsys):
    output = os.fspath(tmp_path / "c.pth")
    bad = [
        (["--inputs", *inputs, "--weights", "0.5", "1"], "sum to 1.5, not 1"),
        (["--inputs", inputs[0], "missing.pth", "--weights", ".5", ".5"], "No checkpoint file"),
    ]
    for argv, message in bad:
        with pytest.raises(SystemExit) as exit:
            tool.main([*argv, "--output", output])
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err
    with pytest.raises(UsageError, match="sum to 1.5, not 1") as error:  # --debug: raised
        tool.main(["--debug", *bad[0][0], "--output", output])
    assert isinstance(error.value.__cause__, ValueError)
    assert not os.path.exists(output)


def test_official_mode_keeps_grown_rows_and_takes_the_trunk_of_a_third_checkpoint(tmp_path, inputs):
    """By hand: head 0.25·[4, 8] + 0.75·[8, 16] = [7, 14]; trunk 20 from the third file."""
    trunk = _save(tmp_path / "trunk.pth", 20.0, 0.0, 0)
    previous = torch.load(inputs[0], weights_only=True)
    previous["model"]["task_modules.0.cls_score.bias"] = torch.tensor([1.0, 2.0])
    current = torch.load(inputs[1], weights_only=True)
    current["model"]["task_modules.0.cls_score.bias"] = torch.tensor([3.0, 5.0, 7.0])
    paths = [os.fspath(tmp_path / "p.pth"), os.fspath(tmp_path / "c.pth")]
    torch.save(previous, paths[0])
    torch.save(current, paths[1])
    output = os.fspath(tmp_path / "official.pth")
    argv = ["--mode", "official", "--inputs", *paths, "--weights", "0.25", "0.75"]
    tool.main([*argv, "--output", output, "--trunk", trunk])
    model = torch.load(output, weights_only=True)["model"]
    assert torch.equal(model["task_modules.0.head.weight"], torch.tensor([7.0, 14.0]).half())
    assert torch.equal(model["task_modules.0.cls_score.bias"], torch.tensor([3.0, 5.0, 7.0]))
    assert torch.equal(model["backbone.res2.conv.weight"], torch.tensor([20.0]))


def test_rename_maps_the_previous_module_onto_the_new_one(tmp_path, inputs):
    target = torch.load(inputs[1], weights_only=True)
    target["model"]["task_modules.1.head.weight"] = target["model"].pop(
        "task_modules.0.head.weight"
    )
    torch.save(target, tmp_path / "step1.pth")
    output = os.fspath(tmp_path / "c.pth")
    argv = ["--inputs", inputs[0], os.fspath(tmp_path / "step1.pth"), "--weights", ".5", ".5"]
    tool.main([*argv, "--output", output, "--rename", "task_modules.0.=task_modules.1."])
    checkpoint = torch.load(output, weights_only=True)
    assert checkpoint["averaging"]["rename"] == {"task_modules.0.": "task_modules.1."}
    expected = torch.tensor([6.0, 12.0]).half()
    assert torch.equal(checkpoint["model"]["task_modules.1.head.weight"], expected)
    with pytest.raises(SystemExit):
        tool.main([*argv, "--output", output, "--rename", "no-equals-sign"])


def test_sweep_evaluates_each_alpha_of_a_trained_step(tmp_path):
    opts = instant_opts(os.fspath(tmp_path))
    config = os.path.join(REPO_ROOT, "configs", "synthetic", "dynamic_ykd.yaml")
    scenario = ["--config-file", config, "--scenario", "15-5"]
    load_tool("train_net").main(
        load_tool("train_net").build_parser().parse_args([*scenario, "--all-steps", *opts])
    )
    record = tool.main(["sweep", *scenario, "--step", "1", "--alphas", "0:1:0.5", *opts])
    folder = tmp_path / "out" / "synthetic" / "15-5" / "dynamic_ykd" / "step1" / "averaging"
    for name in ("averaging.json", "averaging.md", "averaging.png"):
        assert (folder / name).is_file(), name
    models = {}
    for label in ("0", "0.5", "1"):
        models[label] = torch.load(folder / f"model_alpha{label}.pth", weights_only=True)["model"]
        assert (folder / f"eval_alpha{label}" / "eval.json").is_file()
    step0, step1 = (
        torch.load(folder.parents[1] / f"step{t}" / "model_final.pth", weights_only=True)["model"]
        for t in (0, 1)
    )
    assert all(torch.equal(models["0"][k], v) for k, v in step1.items())
    # α = 1: module 1 is step 0's module 0 (its grown predictors: in the old-class rows).
    module = [k for k in step0 if k.startswith("task_modules.0.") and step0[k].is_floating_point()]
    assert module
    for key in module:
        rows = len(step0[key]) - key.endswith(("cls_score.weight", "cls_score.bias"))
        averaged = models["1"]["task_modules.1." + key[len("task_modules.0.") :]]
        assert torch.equal(averaged[:rows], step0[key][:rows]), key
    written = json.loads((folder / "averaging.json").read_text())
    assert written == record
    assert [row["alpha"] for row in written["rows"]] == [0.0, 0.5, 1.0]
    for row in written["rows"]:
        assert all(math.isfinite(row["segm"][f"{g}/AP"]) for g in ("old", "new", "all"))
    assert written["best_alpha"] in (0.0, 0.5, 1.0)
    with pytest.raises(SystemExit):
        tool.main(["sweep", *scenario, "--step", "1", "--alphas", "0:1:0.3", *opts])
    official = tool.main(
        ["sweep", *scenario, "--step", "1", "--alphas", "0.25", *opts]
        + ["MODEL.YKD.AVERAGING.MODE", "official"]
    )
    assert official["mode"] == "official" and official["rows"][0]["alpha"] == 0.25
