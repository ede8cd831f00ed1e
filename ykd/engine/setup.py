"""Building the config of one step of a continual scenario, and where the step's files go."""

import hashlib
import os

import yaml
from detectron2.config import CfgNode, get_cfg

from ..config import add_ykd_config
from ..data import StepDatasets, register_step_datasets
from ..utils import check_output_writable

# Keys that do not change step 0: every method, and every scenario with the same step-0 classes
# (15-5 and 15-1), shares one trained step 0.
_METHOD_ONLY_KEYS = (
    "OUTPUT_DIR",
    "DATASETS.TRAIN",
    "DATASETS.TEST",
    "CONTINUAL.SCENARIO",
    "CONTINUAL.STEP_RULES",
    "CONTINUAL.INCREMENTAL_SEED",
    "CONTINUAL.METHOD",
    "CONTINUAL.JOINT",
    "CONTINUAL.OUTPUT_ROOT",
    "CONTINUAL.INCREMENTAL_OPTS",
    "CONTINUAL.STEP0_DIR",
    "CONTINUAL.PREVIOUS_WEIGHTS",
    "CONTINUAL.VIS_NUM_IMAGES",
    "CONTINUAL.TEST_SPLIT",
    "SYNTHETIC.NUM_DEV",
    "MODEL.YKD",
)
_UNWRITABLE_FIX = "set CONTINUAL.OUTPUT_ROOT to a writable folder or fix its permissions"


def get_ykd_cfg() -> CfgNode:
    """Detectron2's default config with every `ykd` key added."""
    cfg = get_cfg()
    add_ykd_config(cfg)
    return cfg


def scenario_dir(cfg: CfgNode) -> str:
    """``<OUTPUT_ROOT>/<dataset>/<scenario>``: the outputs of every method of a scenario."""
    return os.path.join(cfg.CONTINUAL.OUTPUT_ROOT, cfg.CONTINUAL.DATASET, cfg.CONTINUAL.SCENARIO)


def method_dir(cfg: CfgNode) -> str:
    """
    ``<OUTPUT_ROOT>/<dataset>/<scenario>/<method>``: the steps of one method of a scenario
    (``<method>_seed<s>`` for ``CONTINUAL.INCREMENTAL_SEED`` s >= 0).
    """
    seed = cfg.CONTINUAL.INCREMENTAL_SEED
    name = cfg.CONTINUAL.METHOD + (f"_seed{seed}" if seed >= 0 else "")
    return os.path.join(scenario_dir(cfg), name)


def step0_key(cfg: CfgNode, step0_classes: list[str]) -> str:
    """
    A digest of the step-0 config without the keys that only matter to later steps, and of the
    classes that step 0 learns (``step0_classes``, in label order), which the scenario name does
    not decide alone: 15-5 and 15-1 share one step 0.
    """
    neutral = cfg.clone()
    neutral.defrost()
    for key in _METHOD_ONLY_KEYS:
        parent, _, name = key.rpartition(".")
        node = neutral
        for part in filter(None, parent.split(".")):
            node = node[part]
        node.pop(name, None)
    text = neutral.dump() + "\nstep-0 classes: " + ",".join(step0_classes)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def step_output_dir(cfg: CfgNode, step: int) -> str:
    """
    The output folder of a step: ``<method dir>/step<t>`` for t >= 1. Step 0 is trained once per
    set of step-0 classes and step-0 config, in ``CONTINUAL.STEP0_DIR``
    (``<OUTPUT_ROOT>/<dataset>/shared_step0/<digest>``); each method's ``step0`` links to it.
    """
    if step == 0:
        return cfg.CONTINUAL.STEP0_DIR
    return os.path.join(method_dir(cfg), f"step{step}")


def link_shared_step0(cfg: CfgNode) -> str:
    """Make ``<method dir>/step0`` a relative link to the shared step-0 folder; return its path."""
    link = os.path.join(method_dir(cfg), "step0")
    target = os.path.relpath(cfg.CONTINUAL.STEP0_DIR, os.path.dirname(link))
    if os.path.islink(link) and os.readlink(link) == target:
        return link
    os.makedirs(os.path.dirname(link), exist_ok=True)
    tmp = f"{link}.{os.getpid()}.tmp"
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def previous_step_checkpoint(cfg: CfgNode) -> str:
    """
    The checkpoint that step t >= 1 starts from: ``CONTINUAL.PREVIOUS_WEIGHTS`` when set, else the
    ``model_final.pth`` of step t-1 in the scenario's output tree.

    Raises:
        FileNotFoundError: naming the missing file and the command that makes it.
    """
    step = cfg.CONTINUAL.STEP
    previous = os.path.join(step_output_dir(cfg, step - 1), "model_final.pth")
    path = cfg.CONTINUAL.PREVIOUS_WEIGHTS or previous
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Step {step} of {cfg.CONTINUAL.DATASET} {cfg.CONTINUAL.SCENARIO}"
            f" ({cfg.CONTINUAL.METHOD}) starts from {path}, which does not exist: train step"
            f" {step - 1} first (tools/train_net.py --config-file <this config> --scenario"
            f" {cfg.CONTINUAL.SCENARIO} --step {step - 1}), run all steps with --all-steps, or"
            " set CONTINUAL.PREVIOUS_WEIGHTS."
        )
    return path


def configure_step(cfg: CfgNode, step: int | None = None) -> StepDatasets:
    """
    Point ``cfg`` (in place, unfrozen) at one step of its scenario: register the step's datasets and
    set ``DATASETS.TRAIN/TEST``, the number of classes (all seen classes, per task in
    ``MODEL.YKD.NUM_CLASSES_PER_TASK``; one task of all seen classes for joint training) and
    ``OUTPUT_DIR`` (at step 0 also ``CONTINUAL.STEP0_DIR``).

    Args:
        step: the step; default ``cfg.CONTINUAL.STEP``.
    """
    datasets = register_step_datasets(cfg, step)
    cfg.CONTINUAL.STEP = datasets.step
    cfg.CONTINUAL.SCENARIO = datasets.scenario.name
    cfg.DATASETS.TRAIN = (datasets.train_name,)
    cfg.DATASETS.TEST = (datasets.test_name,)
    num_seen = datasets.scenario.num_seen(datasets.step)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_seen
    per_task = [num_seen] if cfg.CONTINUAL.JOINT else datasets.num_classes_per_task
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = per_task
    if datasets.step == 0:
        step0_classes = datasets.seen_class_names
        cfg.CONTINUAL.STEP0_DIR = os.path.join(
            cfg.CONTINUAL.OUTPUT_ROOT,
            cfg.CONTINUAL.DATASET,
            "shared_step0",
            step0_key(cfg, step0_classes),
        )
    cfg.OUTPUT_DIR = step_output_dir(cfg, datasets.step)
    return datasets


def _check_config_file(path: str) -> None:
    if os.path.isfile(path):
        return
    folder = os.path.dirname(path) or "."
    methods = (
        sorted(name[: -len(".yaml")] for name in os.listdir(folder) if name.endswith(".yaml"))
        if os.path.isdir(folder)
        else []
    )
    known = f"the methods in {folder}: {', '.join(methods)}" if methods else f"no folder {folder}"
    raise FileNotFoundError(
        f"No config file {path} (unknown method?); {known}. Pass --config-file"
        " configs/<dataset>/<method>.yaml."
    )


def config_file_opts(path: str) -> list[str]:
    """
    The keys of the YAML config at ``path`` (not its ``_BASE_``) as command-line opts
    ``["KEY", "VALUE", ...]``, to lay it over another config (e.g. a quick schedule over any
    method's config).
    """
    with open(path) as f:
        tree = yaml.safe_load(f)
    tree.pop("_BASE_", None)

    def flatten(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", str(value)

    return [item for pair in flatten(tree) for item in pair]


def step_rule_opts(rules: list, num_new_classes: int) -> list[str]:
    """
    The opts of the first of ``CONTINUAL.STEP_RULES`` whose ``max_new_classes`` is at least
    ``num_new_classes`` (the classes a step adds); none when no rule matches.

    Raises:
        ValueError: a rule that is not ``[max_new_classes, ["KEY", "VALUE", ...]]``.
    """
    for rule in rules:
        valid = (
            isinstance(rule, (list, tuple))
            and len(rule) == 2
            and isinstance(rule[0], int)
            and isinstance(rule[1], (list, tuple))
            and len(rule[1]) % 2 == 0
        )
        if not valid:
            raise ValueError(
                f'CONTINUAL.STEP_RULES entry {rule!r} is not [max_new_classes, ["KEY", "VALUE",'
                ' ...]]: give an integer and a list of key-value pairs, e.g. [1, ["SOLVER.MAX_ITER",'
                ' "2500"]].'
            )
        if num_new_classes <= rule[0]:
            return [str(item) for item in rule[1]]
    return []


def setup_step_cfg(config_file: str, opts: list[str], scenario=None, step=None) -> CfgNode:
    """
    The frozen config of one step: defaults, ``config_file``, ``opts``, ``scenario`` and ``step``
    when given (they override ``CONTINUAL.SCENARIO`` / ``CONTINUAL.STEP``), then, at steps >= 1,
    the opts of the matching ``CONTINUAL.STEP_RULES`` entry and ``CONTINUAL.INCREMENTAL_OPTS`` (the
    incremental schedule wins over the step-0 one, and INCREMENTAL_OPTS over the rule; change it
    with ``CONTINUAL.INCREMENTAL_OPTS "['SOLVER.MAX_ITER', '800']"`` in ``opts``).

    Raises:
        FileNotFoundError: no ``config_file`` (e.g. an unknown method): the message lists the
            method configs beside it.
        PermissionError: ``CONTINUAL.OUTPUT_ROOT`` or the step's folder cannot be written (checked
            before any data is read and before the model is built).
    """
    cfg = get_ykd_cfg()
    if config_file:
        _check_config_file(config_file)
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if scenario is not None:
        cfg.CONTINUAL.SCENARIO = scenario
    if step is not None:
        cfg.CONTINUAL.STEP = step
    # Before any data is read or made: every step's outputs go under OUTPUT_ROOT.
    check_output_writable(cfg.CONTINUAL.OUTPUT_ROOT, fix=_UNWRITABLE_FIX)
    if cfg.CONTINUAL.STEP > 0:
        step0 = cfg.clone()
        scenario = configure_step(step0, 0).scenario
        cfg.CONTINUAL.STEP0_DIR = step0.CONTINUAL.STEP0_DIR
        new_classes = len(scenario.task(cfg.CONTINUAL.STEP))
        rule_opts = step_rule_opts(cfg.CONTINUAL.STEP_RULES, new_classes)
        cfg.merge_from_list(rule_opts + list(cfg.CONTINUAL.INCREMENTAL_OPTS))
        if cfg.CONTINUAL.INCREMENTAL_SEED >= 0:
            cfg.SEED = cfg.CONTINUAL.INCREMENTAL_SEED
    configure_step(cfg)
    check_output_writable(cfg.OUTPUT_DIR, what="Step output folder", fix=_UNWRITABLE_FIX)
    cfg.freeze()
    return cfg
