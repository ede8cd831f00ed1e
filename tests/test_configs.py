"""Every YAML under configs/ loads and builds its model on CPU, so no config rots."""

import glob
import os

import pytest
from detectron2.modeling import build_model

from tests.conftest import REPO_ROOT
from ykd.engine import configure_step, get_ykd_cfg

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True))
DATASETS = ("synthetic", "voc_sbd", "coco")
# The methods of the README's table: each has a config for every dataset.
METHODS = ("ft", "joint", "ilod", "faster_ilod", "mma", "mma_plus", "ykd", "dynamic_ykd")
METHOD_CONFIGS = [p for p in CONFIGS if os.path.basename(os.path.dirname(p)) in DATASETS]


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_method_has_a_config_for_every_dataset(dataset):
    names = {
        os.path.splitext(os.path.basename(p))[0] for p in METHOD_CONFIGS if f"/{dataset}/" in p
    }
    assert set(METHODS) <= names, f"configs/{dataset}/ lacks {sorted(set(METHODS) - names)}"


@pytest.mark.parametrize("path", METHOD_CONFIGS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_method_config_names_its_folder_and_file(path):
    # Outputs go to <root>/<dataset>/<scenario>/<method>: a config copied from another method that
    # kept its METHOD would write over that method's results.
    cfg = get_ykd_cfg()
    cfg.merge_from_file(path)
    assert cfg.CONTINUAL.DATASET == os.path.basename(os.path.dirname(path))
    assert cfg.CONTINUAL.METHOD == os.path.splitext(os.path.basename(path))[0]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_config_builds_model(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    cfg = get_ykd_cfg()
    cfg.merge_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.CONTINUAL.OUTPUT_ROOT = str(tmp_path / "output")
    datasets = configure_step(cfg)
    model = build_model(cfg)
    assert model.num_classes_per_task == datasets.num_classes_per_task
    assert model.task_modules[-1].box_predictor.num_classes == datasets.scenario.num_seen(
        cfg.CONTINUAL.STEP
    )
    assert next(model.parameters()).device.type == "cpu"
