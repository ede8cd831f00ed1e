"""End to end: tools/train_net.py trains and evaluates step 0 of a synthetic scenario on CPU."""

import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts

train_net = load_tool("train_net")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")


def _args(root, *extra, opts=()):
    argv = ["--config-file", CONFIG, "--scenario", "10-5", *extra]
    return train_net.build_parser().parse_args(argv + instant_opts(str(root)) + list(opts))


def _iterations(step_dir):
    with open(step_dir / "metrics.json") as f:
        return [json.loads(line)["iteration"] for line in f if '"total_loss"' in line]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_net")
    results = train_net.main(_args(root, "--step", "0"))
    return root, root / "out" / "synthetic" / "10-5" / "ft" / "step0", results


def test_step0_writes_layout_and_results(trained):
    root, step_dir, results = trained
    assert step_dir.is_symlink()
    shared = root / "out" / "synthetic" / "shared_step0"
    assert os.path.realpath(step_dir) == os.path.realpath(next(shared.iterdir()))
    for name in ("config.yaml", "model_final.pth", "metrics.json", "eval.json"):
        assert (step_dir / name).is_file(), name
    written = json.loads((step_dir / "eval.json").read_text())
    for task in ("bbox", "segm"):
        for key in ("all/AP", "all/AP50", "new/AP", "1-10/AP"):
            assert key in written[task]
        assert not any(key.startswith("old/") for key in written[task])
        assert written[task]["all/AP"] == pytest.approx(results[task]["all/AP"])
    assert _iterations(step_dir)[-1] == 3


def test_eval_only_reproduces_final_evaluation(trained):
    root, _, results = trained
    again = train_net.main(_args(root, "--step", "0", "--eval-only"))
    for task in ("bbox", "segm"):
        assert again[task]["all/AP"] == pytest.approx(results[task]["all/AP"])


def test_eval_only_of_other_weights_keeps_the_step_evaluation(trained):
    root, step_dir, _ = trained
    before = (step_dir / "eval.json").read_text()
    other = step_dir / "model_other.pth"
    shutil.copy(step_dir / "model_final.pth", other)
    train_net.main(_args(root, "--step", "0", "--eval-only", opts=["MODEL.WEIGHTS", str(other)]))
    assert (step_dir / "eval.json").read_text() == before
    assert json.loads((step_dir / "eval_model_other" / "eval.json").read_text()) == json.loads(
        before
    )


def test_resume_continues_from_last_checkpoint(trained):
    root, step_dir, _ = trained
    # Simulate a run killed after its checkpoint of iteration 1 (CHECKPOINT_PERIOD 2).
    (step_dir / "model_final.pth").unlink()
    (step_dir / "last_checkpoint").write_text("model_0000001.pth")
    train_net.main(_args(root, "--step", "0", "--resume"))
    assert (step_dir / "model_final.pth").is_file()
    assert "Starting training from iteration 2" in (step_dir / "log.txt").read_text()
    assert _iterations(step_dir) == [3, 3]


def test_eval_only_without_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train this step first"):
        train_net.main(_args(tmp_path, "--step", "1", "--eval-only"))


def test_step_without_previous_checkpoint_names_file_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        train_net.main(_args(tmp_path, "--step", "1"))
    message = str(error.value)
    assert os.path.join("shared_step0") in message and "model_final.pth" in message
    assert "--scenario 10-5 --step 0" in message


def test_checkpoint_of_another_scenario_is_refused(trained):
    root, step_dir, _ = trained
    previous = ["CONTINUAL.PREVIOUS_WEIGHTS", str(step_dir / "model_final.pth")]
    args = train_net.build_parser().parse_args(
        ["--config-file", CONFIG, "--scenario", "15-5", "--step", "1"]
        + instant_opts(str(root / "other"))
        + previous
    )
    with pytest.raises(ValueError, match="scenario 10-5 step 0"):
        train_net.main(args)


def test_two_cpu_processes_train_a_ykd_step(trained):
    """--num-gpus 2 on CPU: Detectron2's launch starts 2 gloo processes, 1 image each."""
    root, _, _ = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(REPO_ROOT, "configs", "synthetic", "dynamic_ykd.yaml")
    argv = ["--config-file", config, "--scenario", "10-5", "--step", "1", "--num-gpus", "2"]
    argv += ["--dist-url", f"tcp://127.0.0.1:{port}"] + instant_opts(str(root))
    script = os.path.join(REPO_ROOT, "tools", "train_net.py")
    run = subprocess.run(
        [sys.executable, script, *argv], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    step_dir = root / "out" / "synthetic" / "10-5" / "dynamic_ykd" / "step1"
    with open(step_dir / "metrics.json") as f:
        records = [json.loads(line) for line in f if '"total_loss"' in line]
    assert records[-1]["iteration"] == 2  # the 3 iterations of the instant incremental step
    assert all(math.isfinite(r["total_loss"]) and r["loss_kd_cls"] >= 0 for r in records)
    assert "World size: 2" in run.stdout + run.stderr


def test_unknown_method_lists_the_known_ones(tmp_path):
    config = os.path.join(REPO_ROOT, "configs", "synthetic", "dinosaur.yaml")
    args = train_net.build_parser().parse_args(
        ["--config-file", config, "--scenario", "10-5", "--step", "0"] + instant_opts(str(tmp_path))
    )
    with pytest.raises(FileNotFoundError, match=r"unknown method.*dynamic_ykd, .*ft, .*joint"):
        train_net.main(args)


def _exit_of(argv, capsys) -> tuple[int, str]:
    """
    The exit status and stderr of ``tools/train_net.py`` run in this process. The log handlers
    that earlier tests' set-up left on their (now closed) captured streams are removed first:
    logging into them would print "--- Logging error ---" on stderr.
    """
    for name in ("detectron2", "fvcore", "ykd"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)
    with pytest.raises(SystemExit) as exit:
        train_net.cli(argv)
    return exit.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scenario", "15-7"], "Invalid scenario '15-7' for 20 classes"),
        (["--scenario", "15-5", "--step", "7"], "Step 7 is out of range for scenario 15-5"),
        (["--scenario", "15-5", "--step", "1"], "train step 0 first"),
        (["--scenario", "15-5", "--step", "1", "--eval-only"], "--eval-only: no checkpoint"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, extra, message):
    code, err = _exit_of(["--config-file", CONFIG, *extra, *instant_opts(str(tmp_path))], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_unknown_method_and_missing_data_exit_2(tmp_path, capsys, monkeypatch):
    config = os.path.join(REPO_ROOT, "configs", "synthetic", "dinosaur.yaml")
    code, err = _exit_of(["--config-file", config, *instant_opts(str(tmp_path))], capsys)
    assert code == 2 and err.startswith("No config file") and err.count("\n") == 1
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    voc = os.path.join(REPO_ROOT, "configs", "voc_sbd", "mma.yaml")
    argv = ["--config-file", voc, "--scenario", "15-5", "MODEL.DEVICE", "cpu"]
    code, err = _exit_of(argv + ["CONTINUAL.OUTPUT_ROOT", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("Missing annotation file") and err.count("\n") == 1


def test_a_cuda_config_without_gpu_exits_2_before_building_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    voc = os.path.join(REPO_ROOT, "configs", "voc_sbd", "mma.yaml")
    argv = ["--config-file", voc, "--scenario", "15-5", "CONTINUAL.OUTPUT_ROOT", str(tmp_path)]
    code, err = _exit_of(argv, capsys)
    assert code == 2 and err.startswith("MODEL.DEVICE is 'cuda' but no CUDA GPU is available")
    assert not os.path.exists(tmp_path / "voc_sbd")


def test_debug_shows_the_user_error_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    argv = ["--config-file", CONFIG, "--scenario", "15-7", "--debug", *instant_opts(str(tmp_path))]
    with pytest.raises(ValueError, match="Invalid scenario"):
        train_net.cli(argv)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train_net, "setup", bug)
    with pytest.raises(ZeroDivisionError):
        train_net.cli(["--config-file", CONFIG, "--scenario", "10-5", *instant_opts(str(tmp_path))])


def test_the_script_exits_2_with_the_message_as_its_last_line(tmp_path):
    script = os.path.join(REPO_ROOT, "tools", "train_net.py")
    argv = ["--config-file", CONFIG, "--scenario", "15-7", *instant_opts(str(tmp_path))]
    run = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1].startswith("Invalid scenario '15-7' for 20 classes")
