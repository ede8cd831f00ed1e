"""
Where Dynamic Y-KD loses the AP of old classes, per step t of a finished scenario run:

- **trunk drift**: task module k alone on the shared parts of step k (where it was trained) against
  module k alone on those of step t: its frozen heads see trunk features, and its boxes get masks
  from the unique mask head, that the later steps changed (the drift of trunk and mask head
  together);
- **merge interference**: module k alone against the merged model of step t, on task k's
  classes. The AP of a class depends only on the detections of that class, which the merged model
  takes from module k alone, so this is zero unless the merge's top-K
  (``TEST.DETECTIONS_PER_IMAGE``) drops some of them.

Module k alone detects only task k's classes (``MODEL.YKD.INFERENCE.MODULES module<k>``), so
its AP on task k's group is comparable with the merged model's on that group.
"""

import json
import os

import numpy as np
from detectron2.data import MetadataCatalog

from ..evaluation.continual_evaluator import class_groups
from .evaluate import evaluate_checkpoint
from .scenario import finished_results, scenario_of
from .setup import setup_step_cfg
from .trainer import ContinualTrainer

__all__ = ["decompose_forgetting", "evaluate_variant", "module_alone_eval", "task_group_ap"]


def evaluate_variant(
    config_file: str, opts: list[str], scenario: str, step: int, variant: list[str], name: str
) -> dict:
    """
    The evaluation (``eval.json`` content) of the finished step ``step`` with the extra opts
    ``variant`` (inference options, another test split), written to ``<step dir>/<name>/`` and
    read from there on reruns; the step's own ``eval.json`` is left as it is.
    """
    cfg = setup_step_cfg(config_file, list(opts) + list(variant), scenario=scenario, step=step)
    folder = os.path.join(cfg.OUTPUT_DIR, name)
    path = os.path.join(folder, "eval.json")
    if not os.path.exists(path):
        weights = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        if not os.path.exists(weights):
            raise FileNotFoundError(
                f"No {weights}: train step {step} of {scenario} first (tools/train_net.py"
                f" --config-file {config_file} --scenario {scenario} --all-steps)."
            )
        evaluate_checkpoint(ContinualTrainer, cfg, weights, folder)
    with open(path) as f:
        return json.load(f)


def module_alone_eval(config_file: str, opts: list[str], scenario: str, step: int, module: int):
    """The evaluation of task module ``module`` alone on the trunk of ``step``
    (``<step dir>/decomposition/module<k>/``)."""
    variant = ["MODEL.YKD.INFERENCE.MODULES", f"module{module}"]
    name = os.path.join("decomposition", f"module{module}")
    return evaluate_variant(config_file, opts, scenario, step, variant, name)


def task_group_ap(evaluation: dict, class_order: list[str], classes: list[int]) -> float:
    """Mean mask AP (COCO AP, in %) of ``classes`` (ids in ``class_order``) in ``evaluation``."""
    values = [evaluation["segm"].get(f"AP-{class_order[c]}") for c in classes]
    values = [np.nan if v is None else v for v in values]
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")


def decompose_forgetting(config_file: str, opts: list[str], scenario: str) -> dict:
    """
    For every step t >= 1 and task k < t of a finished run of ``config_file`` on ``scenario``:
    task k's mask AP when learned (merged model of step k), of module k alone at step k and at
    step t, and of the merged model at step t; trunk drift and merge interference in AP points.

    Returns:
        ``{"scenario", "method", "steps": [{"step", "tasks": [{"task", "group", "learned",
        "alone_then", "alone_now", "merged_now", "trunk_drift", "merge_interference"}]}]}``.
    """
    cfg = setup_step_cfg(config_file, opts, scenario=scenario, step=0)
    parsed = scenario_of(cfg)
    order = list(MetadataCatalog.get(cfg.DATASETS.TEST[0]).ykd_class_order)
    merged = []
    for step in range(parsed.num_steps):
        step_cfg = setup_step_cfg(config_file, opts, scenario=scenario, step=step)
        evaluation = finished_results(step_cfg)
        if evaluation is None:
            raise FileNotFoundError(
                f"Step {step} of {scenario} ({step_cfg.CONTINUAL.METHOD}) has not finished in"
                f" {step_cfg.OUTPUT_DIR}: run the scenario with --all-steps first."
            )
        merged.append(evaluation)
    steps = []
    for step in range(1, parsed.num_steps):
        named = class_groups(parsed.tasks(), step, parsed.num_seen(step))
        groups = {tuple(ids): name for name, ids in named.items()}
        tasks = []
        for task in range(step):
            classes = parsed.task(task)
            then = module_alone_eval(config_file, opts, scenario, task, task) if task else merged[0]
            now = module_alone_eval(config_file, opts, scenario, step, task)
            record = {
                "task": task,
                "group": groups.get(tuple(classes), str(task)),
                "learned": task_group_ap(merged[task], order, classes),
                "alone_then": task_group_ap(then, order, classes),
                "alone_now": task_group_ap(now, order, classes),
                "merged_now": task_group_ap(merged[step], order, classes),
            }
            record["trunk_drift"] = record["alone_then"] - record["alone_now"]
            record["merge_interference"] = record["alone_now"] - record["merged_now"]
            tasks.append(record)
        steps.append({"step": step, "tasks": tasks})
    return {"scenario": scenario, "method": cfg.CONTINUAL.METHOD, "steps": steps}
