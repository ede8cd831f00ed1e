"""
The trainer of one continual step: Detectron2's DefaultTrainer with step-aware checkpoints, an
exact resume, and a step end whose last file is ``eval.json`` (``docs/failure_behaviour.md``).
"""

import os
import weakref

import torch
import torch.distributed as dist
from detectron2.data import MetadataCatalog
from detectron2.engine import AMPTrainer, DefaultTrainer, HookBase, SimpleTrainer, TrainerBase
from detectron2.engine.defaults import create_ddp_model
from detectron2.engine.hooks import EvalHook
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from detectron2.utils import comm

from ..checkpoint import YKDCheckpointer, make_ykd_meta
from ..evaluation import ContinualEvaluator, write_prediction_grid
from ..utils import NonFiniteLossError, unwrap
from ..utils.atomic import remove_stale_temporary_files
from .resumable import GatherRandomStates, RandomStates, build_resumable_train_loader
from .setup import method_dir, previous_step_checkpoint, scenario_dir
from .stage_schedule import build_stage_schedule_hook
from .step_averaging import StepAveraging, build_averaging_hook


class PredictionGrid(HookBase):
    """Draws ``predictions.png`` (``CONTINUAL.VIS_NUM_IMAGES`` fixed test images) after the last
    iteration, on the main process."""

    def after_train(self):
        if comm.is_main_process():
            write_prediction_grid(self.trainer.cfg, self.trainer.model)


# Hooks whose after_train acts on a finished step: skipped when an iteration failed.
_STEP_END_HOOKS = (EvalHook, StepAveraging, PredictionGrid)


def _remove_stale_temporary_files(cfg) -> None:
    """The temporary files of writes killed in an earlier run of this step, of its method and of
    its scenario (results and plots)."""
    remove_stale_temporary_files(cfg.OUTPUT_DIR, recursive=True)
    for folder in (method_dir(cfg), scenario_dir(cfg)):
        remove_stale_temporary_files(folder)
        remove_stale_temporary_files(os.path.join(folder, "plots"))


class ContinualTrainer(DefaultTrainer):
    """
    Trains one step of a continual scenario (``cfg.CONTINUAL.STEP``):

    - checkpoints record the scenario, step and classes (:class:`YKDCheckpointer`) and refuse to
      load into a model of another step;
    - step t >= 1 starts from step t-1's ``model_final.pth`` (or ``MODEL.WEIGHTS``), grown by one
      task module, unless it resumes its own last checkpoint; joint training starts from
      ``MODEL.WEIGHTS`` at every step;
    - evaluation reports old/new/all-class AP and writes ``eval.json`` into ``OUTPUT_DIR``, the
      last file of the step (after the averaged model and ``predictions.png``), so that a step
      killed at its end is finished on the rerun, never taken as finished without them;
    - an iteration that fails (a write error, a non-finite loss) ends the run without the step-end
      evaluation, averaging and grid, also at the last iteration;
    - temporary files of writes killed in an earlier run are removed at start.
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__ is replaced, not extended: it wraps the model for GPUs only and
        # builds a checkpointer and loader that do not resume exactly. The order is its own.
        TrainerBase.__init__(self)
        if cfg.CONTINUAL.TEST_SPLIT != "test":
            raise ValueError(
                f"CONTINUAL.TEST_SPLIT {cfg.CONTINUAL.TEST_SPLIT!r} is for evaluating finished"
                " steps (tools/train_net.py --eval-only, into <step>/eval_dev/): train with"
                " CONTINUAL.TEST_SPLIT test."
            )
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        if comm.is_main_process():
            _remove_stale_temporary_files(cfg)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        self.train_sampler, data_loader = build_resumable_train_loader(cfg)
        # On CPU (gloo), DistributedDataParallel takes no device_ids.
        devices = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        model = create_ddp_model(model, broadcast_buffers=False, **devices)
        trainer_class = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_class(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.random_states = RandomStates()
        self.checkpointer = self.build_checkpointer(
            cfg, model, trainer=weakref.proxy(self), random_states=self.random_states
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_optimizer(cls, cfg, model):
        """
        Detectron2's SGD; at an incremental step (t >= 1, not joint) the trunk's parameters take
        ``MODEL.YKD.TRUNK.LR_FACTOR`` times the learning rate (0: the model froze them).
        """
        factor = cfg.MODEL.YKD.TRUNK.LR_FACTOR
        if factor < 0:
            raise ValueError(f"MODEL.YKD.TRUNK.LR_FACTOR must be >= 0, got {factor}")
        if factor == 1 or cfg.CONTINUAL.STEP == 0 or cfg.CONTINUAL.JOINT:
            return super().build_optimizer(cfg, model)
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
            lr_factor_func=lambda name: factor if name.startswith("backbone.") else 1.0,
        )
        return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
            params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )

    @classmethod
    def build_checkpointer(cls, cfg, model, **checkpointables) -> YKDCheckpointer:
        """A checkpointer of ``OUTPUT_DIR`` that records (and checks) the step of ``model``."""
        meta = make_ykd_meta(
            unwrap(model),
            scenario=cfg.CONTINUAL.SCENARIO,
            step=cfg.CONTINUAL.STEP,
            class_names=MetadataCatalog.get(cfg.DATASETS.TEST[0]).thing_classes,
        )
        return YKDCheckpointer(model, cfg.OUTPUT_DIR, ykd_meta=meta, **checkpointables)

    def build_hooks(self):
        """
        Detectron2's hooks, with, first, the gathering of every process's random generators
        before a checkpoint, and before the evaluation: the loss-weight stages
        (``MODEL.YKD.STAGES``), the averaging of the step's model with the previous step's
        (``MODEL.YKD.AVERAGING.ALPHA``) when configured, and ``predictions.png``.
        """
        hooks = super().build_hooks()
        gather = GatherRandomStates(self.random_states, self.cfg.SOLVER.CHECKPOINT_PERIOD)
        extra = [build_stage_schedule_hook(self.cfg), build_averaging_hook(self.cfg)]
        extra = [hook for hook in extra if hook is not None] + [PredictionGrid()]
        evaluation = next(i for i, hook in enumerate(hooks) if isinstance(hook, EvalHook))
        return [gather] + hooks[:evaluation] + extra + hooks[evaluation:]

    def after_train(self):
        """
        Detectron2 tells a finished run by ``iter + 1 >= max_iter``, also true when the last
        iteration failed (e.g. its checkpoint could not be written): then the step-end hooks
        (evaluation, averaging, grid) are skipped. A finished run has ``iter >= max_iter``.
        """
        if self.iter >= self.max_iter:
            return super().after_train()
        self.storage.iter = self.iter
        for hook in self._hooks:
            if not isinstance(hook, _STEP_END_HOOKS):
                hook.after_train()
        return None

    def resume_or_load(self, resume=True):
        """
        Resume this step from its last checkpoint if ``resume`` and one exists; else start step
        t >= 1 from step t-1's model (grown), or load ``MODEL.WEIGHTS`` at step 0 / for joint.

        A run killed while writing ``model_final.pth`` after the periodic checkpoint of the last
        iteration resumes with nothing left to train, so Detectron2 would never write it: it is
        saved here from that checkpoint, which holds the same state.
        """
        cfg = self.cfg
        if resume and self.checkpointer.has_checkpoint():
            super().resume_or_load(resume=True)
            self.train_sampler.start_iter = self.start_iter
            final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
            if self.start_iter >= self.max_iter and not os.path.exists(final):
                if comm.get_world_size() > 1:
                    self.random_states.gather()
                self.checkpointer.save("model_final", iteration=self.start_iter - 1)
            return None
        if cfg.CONTINUAL.STEP > 0 and not cfg.CONTINUAL.JOINT:
            self.checkpointer.load_previous_step(previous_step_checkpoint(cfg))
            self.start_iter = 0
            return None
        return super().resume_or_load(resume=False)

    def train(self):
        """Train, then return the results of the evaluation that follows the last iteration."""
        super().train()
        return getattr(self, "_last_eval_results", None)

    def run_step(self):
        """One iteration; a non-finite loss is reported with the checkpoint the run can resume."""
        try:
            super().run_step()
        except NonFiniteLossError as error:
            error.checkpoint = self.checkpointer.get_checkpoint_file() or None
            raise

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        # The step datasets are cut on the fly: never reuse a cached COCO conversion of them.
        return ContinualEvaluator(
            dataset_name,
            output_dir=output_folder or cfg.OUTPUT_DIR,
            allow_cached_coco=False,
            voc_metric=cfg.CONTINUAL.EVAL_VOC_METRIC,
            voc_iou_thresholds=cfg.CONTINUAL.EVAL_VOC_IOU_THRESHOLDS,
            calibration=cfg.CONTINUAL.EVAL_CALIBRATION,
        )

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """
        Detectron2's evaluation; in a multi-process run every process first takes the main
        process's buffers (BatchNorm statistics, which ``broadcast_buffers=False`` leaves per
        process), so that every shard of the test set is evaluated with the model the main process
        saves, the same after a resume as without one.
        """
        if comm.get_world_size() > 1:
            for buffer in unwrap(model).buffers():
                dist.broadcast(buffer, src=0)
        return super().test(cfg, model, evaluators=evaluators)

    @classmethod
    def test_into(cls, cfg, model, output_folder: str):
        """:meth:`test` with the evaluations written to ``output_folder`` (e.g. of other weights)."""
        evaluators = [
            cls.build_evaluator(cfg, name, output_folder=output_folder)
            for name in cfg.DATASETS.TEST
        ]
        return cls.test(cfg, model, evaluators=evaluators)
