"""tools/visualize.py end to end: an (untrained) step-1 checkpoint drawn on test and folder images."""

import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.evaluation.visualization import CAPTION_HEIGHT, CELL_SIZE, HEADER_HEIGHT

tool = load_tool("visualize")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")


@pytest.fixture(scope="module")
def step1(tmp_path_factory):
    """Command-line arguments of step 1 of 10-5 and the folder holding its model_final.pth."""
    root = tmp_path_factory.mktemp("visualize")
    opts = instant_opts(str(root))
    cfg = setup_step_cfg(CONFIG, opts, scenario="10-5", step=1)
    model = ContinualTrainer.build_model(cfg)
    ContinualTrainer.build_checkpointer(cfg, model).save("model_final")
    args = ["--config-file", CONFIG, "--scenario", "10-5", "--step", "1"]
    return args, opts, cfg.OUTPUT_DIR


def _size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_draws_the_fixed_test_images(step1, tmp_path):
    args, opts, _ = step1
    output = str(tmp_path / "grid.png")
    # An untrained model scores about 1 / (classes + 1): draw some of its detections.
    argv = [*args, "--output", output, "--num", "2", "--score-thresh", "0.075", *opts]
    assert tool.main(argv) == output
    assert _size(output) == (2 * CELL_SIZE, HEADER_HEIGHT + CELL_SIZE + CAPTION_HEIGHT)


def test_draws_a_folder_with_given_weights(step1, tmp_path):
    args, opts, step_dir = step1
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    output = str(tmp_path / "grid.png")
    weights = os.path.join(step_dir, "model_final.pth")
    argv = [*args, "--weights", weights, "--input", str(folder), "--columns", "2"]
    tool.main([*argv, "--output", output, *opts])
    assert _size(output) == (2 * CELL_SIZE, HEADER_HEIGHT + 2 * (CELL_SIZE + CAPTION_HEIGHT))


def test_missing_checkpoint_names_the_command_that_makes_it(step1, tmp_path):
    args, opts, _ = step1
    argv = [*args[:-1], "2", "--output", str(tmp_path / "grid.png"), *opts]
    with pytest.raises(FileNotFoundError, match=r"tools/train_net.py .* --scenario 10-5 --step 2"):
        tool.main(argv)


def test_as_a_command_a_missing_checkpoint_exits_2_with_its_message_alone(step1, tmp_path, capsys):
    args, opts, _ = step1
    argv = [*args[:-1], "2", "--output", str(tmp_path / "grid.png"), *opts]
    with pytest.raises(SystemExit) as exit:
        tool.cli(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("No checkpoint") and err.count("\n") == 1
