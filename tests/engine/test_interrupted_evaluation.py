"""
A step killed during its final evaluation (``model_final.pth`` written, ``eval.json`` not) is
evaluated again on the rerun, never reported from the partial files the killed evaluation left.
"""

import json
import os

from detectron2.data import MetadataCatalog

from tests.conftest import REPO_ROOT
from tests.engine.conftest import instant_opts
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.engine.scenario import finished_results

CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "ft.yaml")


def _truncate(path: str) -> None:
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


def test_step_killed_during_evaluation_is_evaluated_again(tmp_path):
    cfg = setup_step_cfg(CONFIG, instant_opts(str(tmp_path)), scenario="10-5", step=0)
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    folder = cfg.OUTPUT_DIR
    with open(os.path.join(folder, "eval.json")) as f:
        uninterrupted = json.load(f)

    # What a kill inside the evaluation leaves: no eval.json, a half-written detection file and a
    # half-written COCO conversion of the test set (as if it were not written atomically).
    os.unlink(os.path.join(folder, "eval.json"))
    detections = os.path.join(folder, "coco_instances_results.json")
    converted = os.path.join(folder, f"{cfg.DATASETS.TEST[0]}_coco_format.json")
    _truncate(detections)
    _truncate(converted)
    assert finished_results(cfg) is None  # the rerun does not take the step as finished
    # The rerun is a new process: the test set's metadata does not point at a conversion yet.
    delattr(MetadataCatalog.get(cfg.DATASETS.TEST[0]), "json_file")

    rerun = ContinualTrainer(cfg)
    rerun.resume_or_load(resume=True)
    assert rerun.start_iter == cfg.SOLVER.MAX_ITER  # nothing left to train: only the evaluation
    results = rerun.train()
    with open(os.path.join(folder, "eval.json")) as f:
        again = json.load(f)
    assert again == uninterrupted
    assert results["segm"]["all/AP"] == uninterrupted["segm"]["all/AP"]
    for path in (detections, converted):  # rewritten whole
        with open(path) as f:
            json.load(f)
    assert finished_results(cfg) == uninterrupted
