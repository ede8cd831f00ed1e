"""
Two CPU processes (gloo, through Detectron2's ``launch``): a non-finite loss on one rank stops both
with the same one-line error instead of leaving the other waiting in its gradient all-reduce, and a
run killed (SIGKILL of every process) and resumed ends as the uninterrupted one, bit for bit.

The non-finite case runs this file as a script (``python test_two_processes.py ROOT PORT``), so
that the spawned processes can import its worker; a hang fails the test through a timeout.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.conftest import REPO_ROOT  # noqa: E402
from tests.engine.conftest import instant_opts  # noqa: E402

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")
BAD_RANK, BAD_ITERATION = 1, 2
TIMEOUT = 900  # seconds: far more than a 2-process instant step takes on a loaded machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nan_on_one_rank_worker(root: str) -> None:
    """One process of the run: rank ``BAD_RANK``'s mask loss is NaN at ``BAD_ITERATION``; each
    rank writes the error it stopped with to ``<root>/error_rank<r>.txt``."""
    from detectron2.utils import comm
    from detectron2.utils.events import get_event_storage

    from ykd.engine import ContinualTrainer, setup_step_cfg
    from ykd.modeling.mask_head import UniqueMaskHead
    from ykd.utils import NonFiniteLossError

    clean_forward = UniqueMaskHead.forward

    def nan_on_one_rank(head, roi_features, instances):
        output = clean_forward(head, roi_features, instances)
        bad = comm.get_rank() == BAD_RANK and get_event_storage().iter == BAD_ITERATION
        if head.training and bad:
            output["loss_mask"] = output["loss_mask"] * float("nan")
        return output

    UniqueMaskHead.forward = nan_on_one_rank
    cfg = setup_step_cfg(CONFIG, instant_opts(root), scenario="10-5", step=0)
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=False)
    try:
        trainer.train()
    except NonFiniteLossError as error:
        with open(os.path.join(root, f"error_rank{comm.get_rank()}.txt"), "w") as f:
            f.write(str(error))


def test_non_finite_loss_on_one_rank_stops_every_rank_with_the_same_error(tmp_path):
    run = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(tmp_path), str(_free_port())],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    messages = [(tmp_path / f"error_rank{rank}.txt").read_text() for rank in (0, 1)]
    assert messages[0] == messages[1]
    message = messages[0]
    assert "\n" not in message
    assert message.startswith(
        f"Non-finite loss at iteration {BAD_ITERATION} on rank {BAD_RANK} (every process stops):"
        " loss_mask=nan."
    )
    assert "model_0000001.pth is kept" in message


def _train(root, *extra, kill_after=None):
    """Step 0 of 10-5, instant schedule lengthened to 6 iterations, on 2 processes; with
    ``kill_after`` (a checkpoint name), every process is killed (SIGKILL) once ``last_checkpoint``
    names it."""
    argv = [sys.executable, TRAIN_NET, "--config-file", CONFIG, "--scenario", "10-5", "--step"]
    argv += ["0", "--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}", *extra]
    argv += instant_opts(str(root)) + ["SOLVER.MAX_ITER", "6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if kill_after is None:
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert run.returncode == 0, run.stderr[-3000:]
        return
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    pattern = os.path.join(root, "out", "synthetic", "shared_step0", "*", "last_checkpoint")
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None:
        pointers = [open(path).read() for path in glob.glob(pattern)]
        if kill_after in pointers:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and its worker processes
    process.wait()


def test_two_process_run_killed_and_resumed_ends_as_the_uninterrupted_one(tmp_path):
    step0 = os.path.join("out", "synthetic", "10-5", "ft", "step0")
    _train(tmp_path / "straight")
    _train(tmp_path / "killed", kill_after="model_0000001.pth")
    assert not (tmp_path / "killed" / step0 / "model_final.pth").exists(), "killed after the end"
    _train(tmp_path / "killed", "--resume")
    assert (
        "Starting training from iteration 2"
        in (tmp_path / "killed" / step0 / "log.txt").read_text()
    )

    models = {}
    for name in ("straight", "killed"):
        folder = tmp_path / name / step0
        models[name] = torch.load(folder / "model_final.pth", weights_only=True)["model"]
        models[name + "/eval"] = json.loads((folder / "eval.json").read_text())
    assert models["straight"].keys() == models["killed"].keys()
    for key, value in models["straight"].items():
        assert torch.equal(value, models["killed"][key]), key
    assert models["straight/eval"] == models["killed/eval"]


if __name__ == "__main__":
    from detectron2.engine import launch

    root, port = sys.argv[1:]
    launch(_nan_on_one_rank_worker, 2, dist_url=f"tcp://127.0.0.1:{port}", args=(root,))
