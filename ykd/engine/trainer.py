"""The trainer of one continual step: Detectron2's DefaultTrainer with step-aware checkpoints."""

import weakref

from detectron2.data import MetadataCatalog
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm

from ..checkpoint import YKDCheckpointer, make_ykd_meta
from ..evaluation import ContinualEvaluator, write_prediction_grid
from ..utils import NonFiniteLossError, unwrap
from .resumable import RandomStates, build_resumable_train_loader
from .setup import previous_step_checkpoint
from .stage_schedule import build_stage_schedule_hook
from .step_averaging import build_averaging_hook


class ContinualTrainer(DefaultTrainer):
    """
    Trains one step of a continual scenario (``cfg.CONTINUAL.STEP``):

    - checkpoints record the scenario, step and classes (:class:`YKDCheckpointer`) and refuse to
      load into a model of another step;
    - step t >= 1 starts from step t-1's ``model_final.pth`` (or ``MODEL.WEIGHTS``), grown by one
      task module, unless it resumes its own last checkpoint; joint training starts from
      ``MODEL.WEIGHTS`` at every step;
    - evaluation reports old/new/all-class AP and writes ``eval.json`` into ``OUTPUT_DIR``.
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__ is replaced, not extended: it wraps the model for GPUs only and
        # builds a checkpointer and loader that do not resume exactly. The order is its own.
        TrainerBase.__init__(self)
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        self.train_sampler, data_loader = build_resumable_train_loader(cfg)
        # On CPU (gloo), DistributedDataParallel takes no device_ids.
        devices = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        model = create_ddp_model(model, broadcast_buffers=False, **devices)
        trainer_class = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_class(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = self.build_checkpointer(
            cfg, model, trainer=weakref.proxy(self), random_states=RandomStates()
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

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
        Detectron2's hooks, then the loss-weight stages (``MODEL.YKD.STAGES``) and the averaging of
        the step's model with the previous step's (``MODEL.YKD.AVERAGING.ALPHA``), when configured.
        """
        extra = [build_stage_schedule_hook(self.cfg), build_averaging_hook(self.cfg)]
        return super().build_hooks() + [hook for hook in extra if hook is not None]

    def resume_or_load(self, resume=True):
        """
        Resume this step from its last checkpoint if ``resume`` and one exists; else start step
        t >= 1 from step t-1's model (grown), or load ``MODEL.WEIGHTS`` at step 0 / for joint.
        """
        cfg = self.cfg
        if resume and self.checkpointer.has_checkpoint():
            super().resume_or_load(resume=True)
            self.train_sampler.start_iter = self.start_iter
            return None
        if cfg.CONTINUAL.STEP > 0 and not cfg.CONTINUAL.JOINT:
            self.checkpointer.load_previous_step(previous_step_checkpoint(cfg))
            self.start_iter = 0
            return None
        return super().resume_or_load(resume=False)

    def train(self):
        """
        Train, draw ``predictions.png`` (``CONTINUAL.VIS_NUM_IMAGES`` fixed test images), then
        return the results of the evaluation that follows the last iteration.
        """
        super().train()
        if comm.is_main_process():
            write_prediction_grid(self.cfg, self.model)
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
            calibration=cfg.CONTINUAL.EVAL_CALIBRATION,
        )

    @classmethod
    def test_into(cls, cfg, model, output_folder: str):
        """:meth:`test` with the evaluations written to ``output_folder`` (e.g. of other weights)."""
        evaluators = [
            cls.build_evaluator(cfg, name, output_folder=output_folder)
            for name in cfg.DATASETS.TEST
        ]
        return cls.test(cfg, model, evaluators=evaluators)
