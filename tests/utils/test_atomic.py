import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT
from ykd.utils import atomic_write, torch_save_atomic, write_json_atomic
from ykd.utils.atomic import WriteFailedError, remove_stale_temporary_files


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


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_failed_write_is_one_line_naming_file_and_folder_and_keeps_the_old_file(tmp_path, code):
    path = tmp_path / "model_final.pth"
    path.write_bytes(b"the previous checkpoint")

    def disk_error(f):
        f.write(b"half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(WriteFailedError) as error:
        atomic_write(str(path), disk_error, binary=True)
    assert error.value.errno == code and isinstance(error.value, OSError)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"Could not write {path}: {os.strerror(code)} ({errno.errorcode[code]})."
    )
    assert f"free space in {tmp_path} or make it writable" in message and "--resume" in message
    assert path.read_bytes() == b"the previous checkpoint"
    assert os.listdir(tmp_path) == ["model_final.pth"]


def test_failed_rename_is_a_write_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def no_rename(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(WriteFailedError, match="Input/output error"):
        write_json_atomic(str(tmp_path / "eval.json"), {"AP": 1.0})
    assert os.listdir(tmp_path) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_are_removed_live_and_foreign_ones_kept(tmp_path):
    host = socket.gethostname()
    sub = tmp_path / "eval_model_averaged"
    sub.mkdir()
    names = {
        f".model_0000003.pth.{_dead_pid()}@{host}.ab12cd_9.tmp": False,  # killed writer
        f".eval.json.{os.getpid()}@{host}.zz99yy88.tmp": True,  # this process: still writing
        f".last_checkpoint.{os.getppid()}@{host}.a1b2c3d4.tmp": True,  # a live process
        f".model_final.pth.{_dead_pid()}@another-host.a1b2c3d4.tmp": True,  # cannot tell
        ".model_final.pth.k2j3h4_a.tmp": False,  # an earlier version's name, no writer id
        "synthetic_10-5_step1_test_coco_format.json.tmp": False,  # Detectron2's conversion
        "notes.tmp": True,
        "model_0000001.pth": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    (sub / ".eval.json.1.k2j3h4_a.tmp").write_text("x")

    assert remove_stale_temporary_files(str(tmp_path / "missing")) == []
    removed = remove_stale_temporary_files(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        name for name, kept in names.items() if not kept
    )
    assert sorted(os.listdir(tmp_path)) == sorted(
        [name for name, kept in names.items() if kept] + [sub.name]
    )
    assert os.listdir(sub) == [".eval.json.1.k2j3h4_a.tmp"]  # not recursive
    assert remove_stale_temporary_files(str(tmp_path), recursive=True) == [
        str(sub / ".eval.json.1.k2j3h4_a.tmp")
    ]


def test_temporary_file_of_a_killed_write_is_recognised_as_stale(tmp_path):
    """A real writer killed (SIGKILL) inside its write leaves a file that the cleanup removes."""
    script = (
        "import os, signal, sys\n"
        "from ykd.utils import atomic_write\n"
        "def die(f):\n"
        "    f.write('half'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], die)\n"
    )
    target = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-c", script, str(target)], cwd=REPO_ROOT)
    assert run.returncode == -signal.SIGKILL
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(".results.json.") and leftover.endswith(".tmp")
    assert remove_stale_temporary_files(str(tmp_path)) == [str(tmp_path / leftover)]
    assert os.listdir(tmp_path) == []


def test_a_write_removes_the_stale_temporary_files_of_its_own_target_only(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f".results.json.{_dead_pid()}@{host}.ab12cd_9.tmp"
    live = tmp_path / f".results.json.{os.getppid()}@{host}.a1b2c3d4.tmp"
    other = tmp_path / f".results.md.{_dead_pid()}@{host}.ab12cd_9.tmp"
    for path in (stale, live, other):
        path.write_text("half")
    write_json_atomic(str(tmp_path / "results.json"), {"AP": 1.0})
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "results.json"])
