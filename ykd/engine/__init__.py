from .setup import configure_step, get_ykd_cfg, setup_step_cfg, step_output_dir
from .trainer import ContinualTrainer

__all__ = ["ContinualTrainer", "configure_step", "get_ykd_cfg", "setup_step_cfg", "step_output_dir"]
