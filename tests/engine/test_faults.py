"""Faults during a step: a non-finite loss mid-training, an output folder that cannot be written."""

import os

import pytest
import torch
from detectron2.utils.events import get_event_storage

from tests.conftest import REPO_ROOT
from tests.engine.conftest import instant_opts
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.modeling.mask_head import UniqueMaskHead
from ykd.utils import NonFiniteLossError

CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")
BAD_ITERATION = 2  # CHECKPOINT_PERIOD 2: model_0000001.pth is written before it


def _parameters(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_non_finite_loss_stops_keeps_checkpoint_and_resumes(tmp_path, monkeypatch):
    cfg = setup_step_cfg(CONFIG, instant_opts(str(tmp_path)), scenario="10-5", step=0)
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=False)
    before_fault = {}
    clean_forward = UniqueMaskHead.forward

    def nan_at_bad_iteration(head, roi_features, instances):
        output = clean_forward(head, roi_features, instances)
        if head.training and get_event_storage().iter == BAD_ITERATION:
            before_fault.update(_parameters(trainer.model))
            output["loss_mask"] = output["loss_mask"] * float("nan")
        return output

    monkeypatch.setattr(UniqueMaskHead, "forward", nan_at_bad_iteration)
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    good = os.path.join(cfg.OUTPUT_DIR, "model_0000001.pth")
    message = str(error.value)
    assert "\n" not in message
    assert f"iteration {BAD_ITERATION}: loss_mask=nan." in message
    assert "loss_cls" not in message and "loss_rpn" not in message
    assert f"last good checkpoint {good} is kept" in message
    assert "SOLVER.BASE_LR" in message and "--resume" in message

    # The bad iteration updated no weight, wrote no checkpoint; the good one is intact.
    after = _parameters(trainer.model)
    assert before_fault.keys() == after.keys()
    assert all(torch.equal(before_fault[k], after[k]) for k in after)
    assert sorted(f for f in os.listdir(cfg.OUTPUT_DIR) if f.endswith(".pth")) == [
        "model_0000001.pth"
    ]
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")) as f:
        assert f.read() == "model_0000001.pth"
    saved = torch.load(good, map_location="cpu", weights_only=True)
    assert saved["iteration"] == 1
    assert all(torch.equal(saved["model"][k], after[k]) for k in after)

    # Rerun with --resume, the fault gone: training continues from the good checkpoint (the
    # evaluation after training is tested elsewhere: skipped here for time).
    monkeypatch.setattr(UniqueMaskHead, "forward", clean_forward)
    monkeypatch.setattr(ContinualTrainer, "test", classmethod(lambda cls, *args, **kw: {}))
    resumed = ContinualTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == BAD_ITERATION
    resumed.train()
    final = torch.load(
        os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), map_location="cpu", weights_only=True
    )
    assert final["iteration"] == cfg.SOLVER.MAX_ITER - 1


def test_unwritable_output_root_stops_before_data_and_model(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    opts = instant_opts(str(tmp_path))
    opts += ["CONTINUAL.OUTPUT_ROOT", str(blocker / "out")]
    with pytest.raises(PermissionError) as error:
        setup_step_cfg(CONFIG, opts, scenario="10-5", step=1)
    message = str(error.value)
    assert str(blocker / "out") in message and "is a file, not a folder" in message
    assert "CONTINUAL.OUTPUT_ROOT" in message
    assert not (tmp_path / "data").exists()  # no synthetic data was made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_root_is_a_clear_error(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    root.chmod(0o555)
    opts = instant_opts(str(tmp_path)) + ["CONTINUAL.OUTPUT_ROOT", str(root)]
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            setup_step_cfg(CONFIG, opts, scenario="10-5", step=0)
    finally:
        root.chmod(0o755)
