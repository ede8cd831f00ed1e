from .setup import (
    configure_step,
    get_ykd_cfg,
    link_shared_step0,
    method_dir,
    previous_step_checkpoint,
    scenario_dir,
    setup_step_cfg,
    step_output_dir,
)
from .trainer import ContinualTrainer

__all__ = [
    "ContinualTrainer",
    "configure_step",
    "get_ykd_cfg",
    "link_shared_step0",
    "method_dir",
    "previous_step_checkpoint",
    "scenario_dir",
    "setup_step_cfg",
    "step_output_dir",
]
