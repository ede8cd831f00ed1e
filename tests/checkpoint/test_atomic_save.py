"""YKDCheckpointer writes checkpoints and ``last_checkpoint`` atomically, in fvcore's format."""

import os

import pytest
import torch
from torch import nn

from tests.checkpoint.conftest import META
from ykd.checkpoint import YKDCheckpointer


def _checkpointer(folder, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return YKDCheckpointer(model, str(folder), ykd_meta=META, optimizer=optimizer)


def test_saved_file_has_fvcore_format_and_resumes(tmp_path):
    saver = _checkpointer(tmp_path)
    saver.save("model_0000004", iteration=4)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]
    data = torch.load(tmp_path / "model_0000004.pth", map_location="cpu", weights_only=True)
    assert set(data) == {"model", "optimizer", "iteration", "ykd_meta"}
    assert data["iteration"] == 4 and data["ykd_meta"] == META
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"

    loader = _checkpointer(tmp_path, seed=1)
    assert loader.has_checkpoint()
    assert loader.get_checkpoint_file() == str(tmp_path / "model_0000004.pth")
    assert loader.get_all_checkpoint_files() == [str(tmp_path / "model_0000004.pth")]
    extra = loader.resume_or_load("", resume=True)
    assert extra["iteration"] == 4
    assert torch.equal(loader.model.weight, saver.model.weight)
    momentum = [c.checkpointables["optimizer"].state_dict()["state"][0] for c in (saver, loader)]
    assert torch.equal(momentum[0]["momentum_buffer"], momentum[1]["momentum_buffer"])


def test_failed_save_keeps_previous_checkpoint_and_pointer(tmp_path, monkeypatch):
    saver = _checkpointer(tmp_path)
    saver.save("model_0000001", iteration=1)
    good = (tmp_path / "model_0000001.pth").read_bytes()

    def write_half_then_die(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        saver.save("model_0000003", iteration=3)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert (tmp_path / "model_0000001.pth").read_bytes() == good


def test_no_save_dir_writes_nothing(tmp_path):
    model = nn.Linear(2, 2)
    YKDCheckpointer(model, "", ykd_meta=META).save("model_final")
    YKDCheckpointer(model, str(tmp_path), ykd_meta=META, save_to_disk=False).save("model_final")
    assert os.listdir(tmp_path) == []
