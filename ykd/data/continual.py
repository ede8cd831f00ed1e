"""
Lazy registration of the per-step datasets of a continual scenario, named
``<dataset>_<scenario>_<setting>[_joint][_order<hash>]_step<t>_{train,test}``.
"""

import functools
import hashlib
from dataclasses import dataclass

from detectron2.data import DatasetCatalog, MetadataCatalog

from .datasets.sources import DatasetSource, build_source, load_source_split
from .scenarios import Scenario, ScenarioError, check_setting, parse_scenario, resolve_class_order
from .splits import filter_step


@dataclass(frozen=True)
class StepDatasets:
    """
    The datasets of one step of a scenario, as registered in Detectron2's catalogs.

    Attributes:
        scenario: the parsed scenario.
        step: the step.
        class_order: every class name of the dataset in the scenario's order (index = class id).
        train_name, test_name: registered dataset names of the step's training and test splits
            (the test split is the source's ``CONTINUAL.TEST_SPLIT``: "test" or "dev").
    """

    scenario: Scenario
    step: int
    class_order: tuple[str, ...]
    train_name: str
    test_name: str

    @property
    def seen_class_names(self) -> list[str]:
        return list(self.class_order[: self.scenario.num_seen(self.step)])

    @property
    def num_classes_per_task(self) -> list[int]:
        return [len(self.scenario.task(t)) for t in range(self.step + 1)]


def register_step_datasets(cfg, step: int | None = None) -> StepDatasets:
    """
    Register the training and test datasets of a step of ``cfg.CONTINUAL`` (no data is read until
    a dataset is requested from ``DatasetCatalog``) and return their description. Names that are
    already registered are registered anew, with this config's data.

    Args:
        cfg: a config with ``add_ykd_config`` keys.
        step: the step; default ``cfg.CONTINUAL.STEP``.
    Raises:
        ScenarioError, KeyError: invalid scenario, step, setting, class order or dataset name.
    """
    continual = cfg.CONTINUAL
    step = continual.STEP if step is None else step
    source = build_source(cfg)
    class_order = resolve_class_order(
        list(source.class_names), continual.CLASS_ORDER, continual.CLASS_ORDER_SEED
    )
    scenario = parse_scenario(continual.SCENARIO, len(class_order))
    scenario.check_step(step)
    setting = check_setting(continual.SETTING)
    test_split = continual.TEST_SPLIT
    if test_split not in ("test", "dev"):
        raise ValueError(f"CONTINUAL.TEST_SPLIT must be 'test' or 'dev', got {test_split!r}.")
    source.split(test_split)  # a dev split that the dataset lacks fails here

    # Joint training only differs from the others after step 0 (step 0 labels all its classes).
    joint = bool(continual.JOINT) and step > 0
    prefix = f"{source.name}_{scenario.name}_{setting}" + ("_joint" if joint else "")
    if class_order != list(source.class_names):
        digest = hashlib.sha1(",".join(class_order).encode()).hexdigest()[:8]
        prefix += f"_order{digest}"
    datasets = StepDatasets(
        scenario=scenario,
        step=step,
        class_order=tuple(class_order),
        train_name=f"{prefix}_step{step}_train",
        test_name=f"{prefix}_step{step}_" + ("test" if test_split == "test" else "dev"),
    )
    for name, split in ((datasets.train_name, "train"), (datasets.test_name, test_split)):
        # The name does not tell the data's location (root, SYNTHETIC.*): replace an earlier
        # registration, so that the loader always reads the files of this config.
        if name in DatasetCatalog:
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        loader = functools.partial(
            _load_step_split,
            source,
            datasets,
            split=split,
            setting=setting,
            joint=joint,
            name=name,
        )
        DatasetCatalog.register(name, loader)
        seen = datasets.seen_class_names
        MetadataCatalog.get(name).set(
            thing_classes=seen,
            evaluator_type="coco",
            ykd_tasks=[scenario.task(t) for t in range(step + 1)],
            ykd_step=step,
            ykd_scenario=scenario.name,
            ykd_class_order=list(class_order),
            # Records carry contiguous ids as category ids: the evaluator's map is the identity.
            thing_dataset_id_to_contiguous_id={i: i for i in range(len(seen))},
        )
    return datasets


def _load_step_split(
    source: DatasetSource, datasets: StepDatasets, *, split, setting, joint, name
) -> list[dict]:
    records = load_source_split(source, split)
    unknown = {a["category_name"] for r in records for a in r.get("annotations", [])} - set(
        datasets.class_order
    )
    if unknown:
        raise ScenarioError(
            f"Dataset {source.name!r} has categories {sorted(unknown)} that are not among its"
            f" classes {list(datasets.class_order)}: fix the annotation file's category names."
        )
    dicts = filter_step(
        records,
        class_order=list(datasets.class_order),
        scenario=datasets.scenario,
        step=datasets.step,
        is_train=split == "train",
        setting=setting,
        joint=joint,
    )
    if not dicts:
        what = "training" if split == "train" else split
        raise ScenarioError(
            f"{name}: step {datasets.step} of scenario {datasets.scenario.name} has no {what}"
            f" image with its classes {datasets.scenario.task(datasets.step)}: use another"
            " scenario, class order or setting, or a larger dataset."
        )
    return dicts
