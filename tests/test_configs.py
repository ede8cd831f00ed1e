"""Every YAML under configs/ loads and builds its model on CPU, so no config rots."""

import glob
import os

import pytest
from detectron2.modeling import build_model

from tests.conftest import REPO_ROOT
from ykd.engine import configure_step, get_ykd_cfg

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True))


def test_configs_exist():
    names = {os.path.relpath(p, os.path.join(REPO_ROOT, "configs")) for p in CONFIGS}
    assert {"synthetic/ft.yaml", "voc_sbd/ft.yaml", "coco/ft.yaml"} <= names


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
