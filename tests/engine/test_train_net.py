"""End to end: tools/train_net.py trains and evaluates step 0 of a synthetic scenario on CPU."""

import json
import os

import pytest

from tests.conftest import REPO_ROOT, load_tool

train_net = load_tool("train_net")
CONFIG = os.path.join(REPO_ROOT, "configs", "quick_schedules", "synthetic_instant_test.yaml")


def _args(tmp_path, *extra, opts=()):
    argv = ["--config-file", CONFIG, "--scenario", "3-1", *extra]
    argv += [
        "SYNTHETIC.ROOT",
        str(tmp_path / "data"),
        "CONTINUAL.OUTPUT_ROOT",
        str(tmp_path / "out"),
    ]
    return train_net.build_parser().parse_args(argv + list(opts))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("train_net")
    results = train_net.main(_args(tmp_path, "--step", "0"))
    step_dir = tmp_path / "out" / "synthetic" / "3-1" / "ft" / "step0"
    return tmp_path, step_dir, results


def test_step0_writes_layout_and_results(trained):
    _, step_dir, results = trained
    for name in ("config.yaml", "model_final.pth", "metrics.json", "eval.json"):
        assert (step_dir / name).is_file(), name
    with open(step_dir / "eval.json") as f:
        written = json.load(f)
    for task in ("bbox", "segm"):
        for key in ("all/AP", "all/AP50", "new/AP", "1-3/AP"):
            assert key in written[task]
        assert not any(key.startswith("old/") for key in written[task])
        assert written[task]["all/AP"] == pytest.approx(results[task]["all/AP"], nan_ok=True)
    with open(step_dir / "metrics.json") as f:
        iterations = [json.loads(line)["iteration"] for line in f if '"total_loss"' in line]
    assert iterations[-1] == 3


def test_eval_only_reproduces_final_evaluation(trained):
    tmp_path, _, results = trained
    again = train_net.main(_args(tmp_path, "--step", "0", "--eval-only"))
    for task in ("bbox", "segm"):
        assert again[task]["all/AP"] == pytest.approx(results[task]["all/AP"], nan_ok=True)


def test_resume_continues_from_last_checkpoint(trained):
    tmp_path, step_dir, _ = trained
    train_net.main(_args(tmp_path, "--step", "0", "--resume", opts=["SOLVER.MAX_ITER", "6"]))
    with open(step_dir / "metrics.json") as f:
        iterations = [json.loads(line)["iteration"] for line in f if '"total_loss"' in line]
    assert iterations[-1] == 5
    assert iterations.count(3) == 1  # iterations 0-3 were not trained again


def test_eval_only_without_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train this step first"):
        train_net.main(_args(tmp_path, "--step", "1", "--eval-only"))
