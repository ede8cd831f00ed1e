"""tools/average_checkpoints.py: writes a weights-only-loadable average, never overwrites an input."""

import os

import pytest
import torch

from tests.conftest import load_tool

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
def test_refuses_to_overwrite_an_input(tmp_path, inputs, spelling):
    output = {
        "same": inputs[0],
        "dotted": os.path.join(tmp_path, "out", "..", "a.pth"),
        "link": os.fspath(tmp_path / "link.pth"),
    }[spelling]
    os.symlink(inputs[0], tmp_path / "link.pth")
    before = open(inputs[0], "rb").read()
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        tool.main(["--inputs", *inputs, "--weights", "0.5", "0.5", "--output", output])
    assert open(inputs[0], "rb").read() == before


def test_library_errors_are_one_line_exits(tmp_path, inputs):
    output = os.fspath(tmp_path / "c.pth")
    with pytest.raises(SystemExit, match="sum to 1.5, not 1"):
        tool.main(["--inputs", *inputs, "--weights", "0.5", "1", "--output", output])
    with pytest.raises(SystemExit, match="No checkpoint file .*missing.pth"):
        tool.main(
            ["--inputs", inputs[0], "missing.pth", "--weights", ".5", ".5", "--output", output]
        )
    assert not os.path.exists(output)


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
