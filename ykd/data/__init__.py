from . import datasets  # noqa: F401  (registers the source datasets)
from .continual import StepDatasets, register_step_datasets
from .scenarios import Scenario, ScenarioError, parse_scenario, resolve_class_order

__all__ = [
    "Scenario",
    "ScenarioError",
    "StepDatasets",
    "parse_scenario",
    "register_step_datasets",
    "resolve_class_order",
]
