"""Chaining the steps of a scenario: finished-step detection, progress lines, method results."""

import json
import logging
import os
import time

from detectron2.data import MetadataCatalog

from ..data import parse_scenario
from ..utils import write_json_atomic, write_text_atomic
from .results import (
    compare_methods,
    mask_ap_summary,
    method_results,
    method_table,
    plot_comparison,
    plot_method,
)
from .setup import method_dir, scenario_dir, step_output_dir
from .step_averaging import averaged_eval_dir

logger = logging.getLogger(__name__)


def _json_or_none(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _step_eval(folder: str) -> dict | None:
    """The evaluation of the step in ``folder`` if it finished (final model and eval.json)."""
    if not os.path.exists(os.path.join(folder, "model_final.pth")):
        return None
    return _json_or_none(os.path.join(folder, "eval.json"))


def finished_results(cfg) -> dict | None:
    """The evaluation of the step of ``cfg`` if it finished (final model and eval.json), else None."""
    return _step_eval(cfg.OUTPUT_DIR)


def scenario_of(cfg):
    """The parsed scenario of ``cfg`` (its datasets must be registered)."""
    class_order = MetadataCatalog.get(cfg.DATASETS.TEST[0]).ykd_class_order
    return parse_scenario(cfg.CONTINUAL.SCENARIO, len(class_order))


class ScenarioProgress:
    """Logs one line per step of a scenario run: step t/T, method, elapsed time and ETA."""

    def __init__(self, cfg):
        self.method = cfg.CONTINUAL.METHOD
        self.scenario = cfg.CONTINUAL.SCENARIO
        self.num_steps = scenario_of(cfg).num_steps
        self._start = time.perf_counter()
        self._step_start = None
        self._trained = []

    def start(self, step: int) -> None:
        self._step_start = time.perf_counter()
        logger.info(self._line(step, "training"))

    def done(self, step: int, results: dict | None) -> None:
        if self._step_start is None:
            logger.info(self._line(step, "finished earlier, skipped"))
        else:
            self._trained.append(time.perf_counter() - self._step_start)
            self._step_start = None
            logger.info(self._line(step, f"done (mask AP {mask_ap_summary(results)})"))

    def _line(self, step: int, status: str) -> str:
        elapsed = time.perf_counter() - self._start
        line = (
            f"[scenario {self.scenario} | {self.method}] step {step} ({step + 1}/{self.num_steps})"
        )
        line += f" {status}; elapsed {elapsed / 60:.1f} min"
        if self._trained:
            remaining = self.num_steps - step - (0 if self._step_start else 1)
            eta = remaining * sum(self._trained) / len(self._trained)
            line += f", ETA {eta / 60:.1f} min"
        return line


def write_method_results(cfg) -> str:
    """
    Write ``results.json``, ``results.md`` and ``plots/ap_per_step.png`` of the method of ``cfg``
    from the ``eval.json`` of each of its steps, then refresh the scenario's comparison of all its
    methods (:func:`write_comparison`); return the method's folder. Steps not run yet are left
    out (for joint training, which is often run at the last step only).
    """
    scenario = scenario_of(cfg)
    class_order = list(MetadataCatalog.get(cfg.DATASETS.TEST[0]).ykd_class_order)
    folders = [step_output_dir(cfg, step) for step in range(scenario.num_steps)]
    results = method_results(
        [_step_eval(folder) for folder in folders],
        dataset=cfg.CONTINUAL.DATASET,
        scenario=scenario,
        method=cfg.CONTINUAL.METHOD,
        class_order=class_order,
        averaged=[_json_or_none(os.path.join(averaged_eval_dir(f), "eval.json")) for f in folders],
    )
    results["incremental_seed"] = cfg.CONTINUAL.INCREMENTAL_SEED
    folder = method_dir(cfg)
    write_json_atomic(os.path.join(folder, "results.json"), results)
    write_text_atomic(os.path.join(folder, "results.md"), method_table(results))
    plot_method(results, os.path.join(folder, "plots", "ap_per_step.png"))
    write_comparison(load_method_results([scenario_dir(cfg)]), scenario_dir(cfg))
    return folder


def load_method_results(folders: list[str]) -> list[dict]:
    """
    The ``results.json`` of methods, from method folders or scenario folders (all of whose methods
    are taken), sorted by method name.
    """
    found = []
    for folder in folders:
        if os.path.exists(os.path.join(folder, "results.json")):
            found.append(os.path.join(folder, "results.json"))
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name, "results.json")
            if os.path.exists(path):
                found.append(path)
    if not found:
        raise FileNotFoundError(f"No results.json in {folders}: run a scenario with --all-steps.")
    results = []
    for path in found:
        with open(path) as f:
            results.append(json.load(f))
    return sorted(results, key=lambda r: r["method"])


def write_comparison(all_results: list[dict], folder: str) -> None:
    """``<folder>/results.md`` (one row per method) and ``<folder>/plots/methods.png``."""
    write_text_atomic(os.path.join(folder, "results.md"), compare_methods(all_results))
    plot_comparison(all_results, os.path.join(folder, "plots", "methods.png"))
