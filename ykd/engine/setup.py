"""Building the config of one step of a continual scenario."""

import os

from detectron2.config import CfgNode, get_cfg

from ..config import add_ykd_config
from ..data import StepDatasets, register_step_datasets


def get_ykd_cfg() -> CfgNode:
    """Detectron2's default config with every `ykd` key added."""
    cfg = get_cfg()
    add_ykd_config(cfg)
    return cfg


def step_output_dir(cfg: CfgNode, datasets: StepDatasets) -> str:
    """``<OUTPUT_ROOT>/<dataset>/<scenario>/<method>/step<t>`` (DESIGN.md §8)."""
    continual = cfg.CONTINUAL
    return os.path.join(
        continual.OUTPUT_ROOT,
        continual.DATASET,
        datasets.scenario.name,
        continual.METHOD,
        f"step{datasets.step}",
    )


def configure_step(cfg: CfgNode, step: int | None = None) -> StepDatasets:
    """
    Point ``cfg`` (in place, unfrozen) at one step of its scenario: register the step's datasets and
    set ``DATASETS.TRAIN/TEST``, the number of classes (all seen classes, per task in
    ``MODEL.YKD.NUM_CLASSES_PER_TASK``) and ``OUTPUT_DIR``.

    Args:
        step: the step; default ``cfg.CONTINUAL.STEP``.
    """
    datasets = register_step_datasets(cfg, step)
    cfg.CONTINUAL.STEP = datasets.step
    cfg.CONTINUAL.SCENARIO = datasets.scenario.name
    cfg.DATASETS.TRAIN = (datasets.train_name,)
    cfg.DATASETS.TEST = (datasets.test_name,)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = datasets.scenario.num_seen(datasets.step)
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = datasets.num_classes_per_task
    cfg.OUTPUT_DIR = step_output_dir(cfg, datasets)
    return datasets


def setup_step_cfg(config_file: str, opts: list[str], scenario=None, step=None) -> CfgNode:
    """
    The frozen config of one step: defaults, ``config_file``, ``opts``, then ``scenario`` and
    ``step`` when given (they override ``CONTINUAL.SCENARIO`` / ``CONTINUAL.STEP``).
    """
    cfg = get_ykd_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if scenario is not None:
        cfg.CONTINUAL.SCENARIO = scenario
    configure_step(cfg, step)
    cfg.freeze()
    return cfg
