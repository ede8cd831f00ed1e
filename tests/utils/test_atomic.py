import json
import os

import pytest
import torch

from ykd.utils import atomic_write, torch_save_atomic, write_json_atomic


def test_json_write_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "eval.json"
    write_json_atomic(str(path), {"segm": {"all/AP": 1.0}})
    with pytest.raises(ValueError):
        write_json_atomic(str(path), {"segm": {"all/AP": float("nan")}})
    assert json.loads(path.read_text()) == {"segm": {"all/AP": 1.0}}
    assert os.listdir(tmp_path) == ["eval.json"]


def test_interrupted_writer_leaves_no_file(tmp_path):
    def fail_midway(f):
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(tmp_path / "results.md"), fail_midway)
    assert os.listdir(tmp_path) == []


def test_torch_save_round_trip_in_new_folder(tmp_path):
    path = tmp_path / "sub" / "model.pth"
    torch_save_atomic({"model": {"w": torch.arange(3.0)}}, str(path))
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["w"], torch.tensor([0.0, 1.0, 2.0]))
    assert oct(path.stat().st_mode & 0o777) == "0o644"
