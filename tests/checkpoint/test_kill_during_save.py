"""
SIGKILL at random moments of a process that saves training checkpoints (YKDCheckpointer, with
Detectron2's periodic schedule) and evaluation/results files (ykd.utils atomic writes): after every
kill, each file a later run reads is absent or complete, and a temporary file is never taken for a
checkpoint.
"""

import json
import multiprocessing
import os
import random
import signal
import time

import torch
from fvcore.common.checkpoint import PeriodicCheckpointer
from torch import nn

from tests.checkpoint.conftest import META
from ykd.checkpoint import YKDCheckpointer
from ykd.utils import write_json_atomic, write_text_atomic

KILLS = 15


def _checkpointer(folder) -> YKDCheckpointer:
    model = nn.Module()
    model.weight = nn.Parameter(torch.zeros(2000, 2000))  # 16 MB: kills often land inside a save
    return YKDCheckpointer(model, folder, ykd_meta=META)


def _train_forever(folder: str) -> None:
    """A 'run' that resumes from the last checkpoint, then saves and writes results forever."""
    torch.set_num_threads(1)  # a forked child must not use the parent's OpenMP pool
    checkpointer = _checkpointer(folder)
    start = checkpointer.resume_or_load("", resume=True).get("iteration", -1) + 1
    periodic = PeriodicCheckpointer(checkpointer, period=1, max_to_keep=3)
    for iteration in range(start, 10**9):
        with torch.no_grad():
            checkpointer.model.weight.fill_(iteration)
        periodic.step(iteration)
        if iteration % 4 == 0:  # most of the time goes to checkpoints, as in training
            record = {"iteration": iteration, "AP": [float(iteration)] * 2_000}
            write_json_atomic(os.path.join(folder, "eval.json"), record)
            write_text_atomic(os.path.join(folder, "results.md"), f"| {iteration} |\n" * 500)


def _check_readable(folder: str) -> tuple[int, int]:
    """
    Assert that what a later run reads is whole; return the iteration it resumes after and the
    number of temporary checkpoint files left by kills inside a save.
    """
    names = os.listdir(folder)
    reader = _checkpointer(folder)
    checkpoints = reader.get_all_checkpoint_files()
    assert all(os.path.basename(p).startswith("model_") for p in checkpoints), checkpoints
    for path in checkpoints:
        data = torch.load(path, map_location="cpu", weights_only=True)
        assert path.endswith(f"model_{data['iteration']:07d}.pth")
        assert torch.all(data["model"]["weight"] == data["iteration"])
    last = -1
    if reader.has_checkpoint():
        with open(os.path.join(folder, "last_checkpoint")) as f:
            pointed = f.read()
        assert pointed.startswith("model_") and pointed.endswith(".pth"), pointed
        last = reader.resume_or_load("", resume=True)["iteration"]
        assert torch.all(reader.model.weight == last)
    for name in names:
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                record = json.load(f)
            assert record["AP"] == [float(record["iteration"])] * 2_000
        if name == "results.md":
            with open(os.path.join(folder, name)) as f:
                assert len(f.read().splitlines()) == 500
    return last, sum(name.startswith(".model_") and name.endswith(".tmp") for name in names)


def _keep_only_last_checkpoint(folder: str) -> None:
    last = _checkpointer(folder).get_checkpoint_file()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".tmp") or (name.endswith(".pth") and path != last):
            os.unlink(path)


def test_sigkill_never_leaves_a_partial_file(tmp_path):
    folder = str(tmp_path)
    rng = random.Random(0)
    fork = multiprocessing.get_context("fork")
    last, interrupted = -1, 0
    for _ in range(KILLS):
        run = fork.Process(target=_train_forever, args=(folder,), daemon=True)
        run.start()
        time.sleep(rng.uniform(0.1, 0.6))
        os.kill(run.pid, signal.SIGKILL)
        run.join()
        assert run.exitcode == -signal.SIGKILL
        resumed, leftovers = _check_readable(folder)
        assert resumed >= last  # progress is never lost, whatever the moment of the kill
        interrupted += leftovers
        last = resumed
        _keep_only_last_checkpoint(folder)  # bounds the disk space the test takes
    assert last > 0
    assert interrupted > 0  # some kills did land inside a checkpoint write
