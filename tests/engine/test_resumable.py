"""A killed run resumes exactly: sampler position and random generator states."""

import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from detectron2.data.samplers import TrainingSampler

from tests.conftest import REPO_ROOT
from tests.engine.conftest import instant_opts
from ykd.engine.resumable import RandomStates, ResumableSampler

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")


def _first(iterable, n):
    iterator = iter(iterable)
    return [next(iterator) for _ in range(n)]


def test_resumable_sampler_skips_the_indices_of_finished_iterations():
    stream = _first(TrainingSampler(7, seed=3), 40)
    sampler = ResumableSampler(TrainingSampler(7, seed=3), indices_per_iter=4)
    assert _first(sampler, 12) == stream[:12]
    sampler.start_iter = 5  # 5 iterations of 4 indices were trained
    assert _first(sampler, 12) == stream[20:32]


def _draws():
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3)


def test_random_states_restore_every_generator_through_a_weights_only_file(tmp_path):
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    states = RandomStates()
    path = tmp_path / "states.pth"
    torch.save(states.state_dict(), path)
    expected = _draws()
    _draws()
    states.load_state_dict(torch.load(path, weights_only=True))
    again = _draws()
    assert again[:3] == expected[:3]
    assert torch.equal(again[3], expected[3])


def _read_all(paths) -> str:
    texts = []
    for path in paths:
        with open(path) as f:
            texts.append(f.read())
    return "\n".join(texts)


def _train(root, *extra, wait_for=None):
    """Step 0 of 10-5 on the instant config, 24 iterations; with ``wait_for`` (a glob pattern of
    ``last_checkpoint`` files, and the checkpoint name), killed (SIGKILL) as soon as such a file
    names that checkpoint."""
    argv = [sys.executable, TRAIN_NET, "--config-file", CONFIG, "--scenario", "10-5"]
    argv += ["--step", "0", *extra, *instant_opts(str(root))]
    argv += ["SOLVER.MAX_ITER", "24", "SOLVER.CHECKPOINT_PERIOD", "6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait_for is None:
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
        return
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    pattern, checkpoint = wait_for
    while process.poll() is None and checkpoint not in _read_all(glob.glob(str(pattern))):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_run_killed_mid_step_resumes_to_the_uninterrupted_result(tmp_path):
    step0 = os.path.join("out", "synthetic", "10-5", "ft", "step0")
    _train(tmp_path / "straight")
    killed = tmp_path / "killed"
    # Step 0 trains in the dataset's shared_step0/<digest>/ (ft/step0 links to it at the end).
    _train(
        killed,
        wait_for=(
            killed / "out" / "synthetic" / "shared_step0" / "*" / "last_checkpoint",
            "model_0000011.pth",
        ),
    )
    assert not (killed / step0 / "model_final.pth").exists(), "killed after the end"
    _train(killed, "--resume")

    with open(killed / step0 / "log.txt") as f:
        starts = re.findall(r"Starting training from iteration (\d+)", f.read())
    assert starts[0] == "0" and int(starts[-1]) >= 12, starts  # the rerun resumed mid-step
    final = {}
    for name in ("straight", "killed"):
        checkpoint = torch.load(tmp_path / name / step0 / "model_final.pth", weights_only=True)
        final[name] = checkpoint["model"]
        with open(tmp_path / name / step0 / "eval.json") as f:
            final[name + "/eval"] = json.load(f)
    assert final["straight"].keys() == final["killed"].keys()
    for key, value in final["straight"].items():
        assert torch.equal(value, final["killed"][key]), key
    assert final["straight/eval"]["segm"] == final["killed/eval"]["segm"]


def test_random_states_of_another_number_of_processes_are_not_restored():
    states = RandomStates()
    saved = {"ranks": [states.state_dict(), states.state_dict()]}  # a 2-process checkpoint
    expected = _draws()
    states.load_state_dict(saved)  # in this single process: the generators go on as they were
    again = _draws()
    assert again[:3] != expected[:3]
    single = states.state_dict()
    assert "ranks" not in single  # one process: its own generators
    after_single = _draws()
    states.load_state_dict({"ranks": [single]})  # a 1-process record in the list form
    assert _draws()[:3] == after_single[:3]
