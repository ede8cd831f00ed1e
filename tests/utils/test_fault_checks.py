import math
import os

import pytest
import torch
from detectron2.utils.events import EventStorage

from ykd.utils import NonFiniteLossError, check_finite_losses, check_output_writable


def test_finite_losses_pass():
    check_finite_losses({"loss_cls": torch.tensor(1.5), "loss_mask": torch.tensor(0.0)})
    check_finite_losses({})


def test_non_finite_terms_are_named_with_values_and_iteration():
    losses = {
        "loss_cls": torch.tensor(float("inf")),
        "loss_box_reg": torch.tensor(0.3),
        "loss_kd_cls": torch.tensor(float("nan")),
    }
    with EventStorage(start_iter=7), pytest.raises(NonFiniteLossError) as error:
        check_finite_losses(losses)
    assert isinstance(error.value, FloatingPointError)
    assert error.value.iteration == 7
    assert list(error.value.terms) == ["loss_cls", "loss_kd_cls"]
    assert math.isnan(error.value.terms["loss_kd_cls"])
    message = str(error.value)
    assert message.startswith("Non-finite loss at iteration 7: loss_cls=inf, loss_kd_cls=nan.")
    assert "loss_box_reg" not in message and "no checkpoint was written" in message


def test_message_names_the_checkpoint_and_fix():
    error = NonFiniteLossError(None, {"loss_mask": float("-inf")}, "out/model_0000009.pth")
    message = str(error)
    assert message.startswith("Non-finite loss: loss_mask=-inf.")
    assert "last good checkpoint out/model_0000009.pth is kept" in message
    assert "SOLVER.BASE_LR" in message and "--resume" in message


def test_writable_folder_passes_and_nothing_is_created(tmp_path):
    check_output_writable(str(tmp_path))
    check_output_writable(str(tmp_path / "not" / "yet" / "made"))
    assert os.listdir(tmp_path) == []


def test_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(PermissionError) as error:
        check_output_writable(str(tmp_path / "file" / "out"), fix="do X")
    assert str(error.value) == (
        f"Output folder {tmp_path / 'file' / 'out'} cannot be created: {tmp_path / 'file'} is a"
        " file, not a folder; do X."
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f"{tmp_path / 'out'} is not writable"):
            check_output_writable(str(tmp_path / "out"))
    finally:
        tmp_path.chmod(0o755)


def test_message_of_a_multi_process_run_names_the_ranks():
    error = NonFiniteLossError(5, {"loss_cls": float("nan")}, "out/model_0000003.pth", ranks=[1, 3])
    message = str(error)
    assert message.startswith(
        "Non-finite loss at iteration 5 on rank 1, 3 (every process stops): loss_cls=nan."
    )
    assert "\n" not in message and error.ranks == [1, 3]
