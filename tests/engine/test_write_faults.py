"""
A checkpoint save that fails (full disk, I/O error) ends the run with one line naming the folder,
keeps the previous checkpoint and ``last_checkpoint``, and the rerun resumes from them.
"""

import errno
import os

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.engine.conftest import instant_opts
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.utils import atomic
from ykd.utils.atomic import WriteFailedError

CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")
# The instant step 0: 4 iterations, CHECKPOINT_PERIOD 2: model_0000001.pth, then model_0000003.pth
# and model_final.pth at the last iteration.


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    """One synthetic data set for the cases of this module."""
    return str(tmp_path_factory.mktemp("data"))


def _fail_write_of(monkeypatch, basename: str, occurrence: int, code: int) -> None:
    """Make the ``occurrence``-th atomic write of a file named ``basename`` fail with ``code``,
    after half of it is written."""
    clean = atomic.atomic_write
    seen = []

    def faulty(path, write, *, binary=False):
        if os.path.basename(path) == basename:
            seen.append(path)
            if len(seen) == occurrence:

                def half_then_fail(f):
                    f.write(b"half" if binary else "half")
                    raise OSError(code, os.strerror(code))

                return clean(path, half_then_fail, binary=binary)
        return clean(path, write, binary=binary)

    monkeypatch.setattr(atomic, "atomic_write", faulty)


@pytest.mark.parametrize(
    "basename, occurrence, code, on_disk, pointer, resumed_at",
    [
        # The save of the last iteration: nothing of the step end (evaluation, grid) may follow.
        ("model_0000003.pth", 1, errno.ENOSPC, ["model_0000001.pth"], "model_0000001.pth", 2),
        # The checkpoint is written, its pointer is not: the rerun takes the previous one.
        (
            "last_checkpoint",
            2,
            errno.EIO,
            ["model_0000001.pth", "model_0000003.pth"],
            "model_0000001.pth",
            2,
        ),
        # model_final.pth after the last iteration's checkpoint: nothing is left to train, and
        # the rerun writes model_final.pth from that checkpoint.
        (
            "model_final.pth",
            1,
            errno.ENOSPC,
            ["model_0000001.pth", "model_0000003.pth"],
            "model_0000003.pth",
            4,
        ),
    ],
)
def test_failed_save_keeps_previous_checkpoint_and_resumes(
    tmp_path, data_root, monkeypatch, basename, occurrence, code, on_disk, pointer, resumed_at
):
    opts = instant_opts(str(tmp_path)) + ["SYNTHETIC.ROOT", data_root]
    cfg = setup_step_cfg(CONFIG, opts, scenario="10-5", step=0)
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=False)
    _fail_write_of(monkeypatch, basename, occurrence, code)
    with pytest.raises(WriteFailedError) as error:
        trainer.train()
    message = str(error.value)
    assert "\n" not in message and error.value.errno == code
    assert message.startswith(f"Could not write {os.path.join(cfg.OUTPUT_DIR, basename)}: ")
    assert f"free space in {os.path.abspath(cfg.OUTPUT_DIR)}" in message

    names = sorted(os.listdir(cfg.OUTPUT_DIR))
    assert [n for n in names if n.endswith(".pth")] == on_disk
    assert not any(n.endswith(".tmp") for n in names), names
    assert "eval.json" not in names and "predictions.png" not in names, names
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")) as f:
        assert f.read() == pointer
    for name in on_disk:  # every checkpoint on disk is whole
        torch.load(os.path.join(cfg.OUTPUT_DIR, name), map_location="cpu", weights_only=True)

    monkeypatch.undo()
    monkeypatch.setattr(ContinualTrainer, "test", classmethod(lambda cls, *args, **kw: {}))
    resumed = ContinualTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == resumed_at
    resumed.train()
    final, last = (
        torch.load(os.path.join(cfg.OUTPUT_DIR, name), map_location="cpu", weights_only=True)
        for name in ("model_final.pth", "model_0000003.pth")
    )
    assert final["iteration"] == last["iteration"] == cfg.SOLVER.MAX_ITER - 1
    assert all(torch.equal(final["model"][k], last["model"][k]) for k in last["model"])
    assert os.path.exists(os.path.join(cfg.OUTPUT_DIR, "predictions.png"))
