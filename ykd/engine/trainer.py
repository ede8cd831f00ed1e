"""The trainer of one continual step: Detectron2's DefaultTrainer with step-aware checkpoints."""

import weakref

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import YKDCheckpointer, make_ykd_meta
from ..evaluation import ContinualEvaluator
from .setup import previous_step_checkpoint


def unwrap(model):
    """The model inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


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
        if comm.get_world_size() > 1 and cfg.MODEL.DEVICE == "cpu":
            raise RuntimeError(
                "Multi-process training on CPU is not supported: Detectron2's DefaultTrainer wraps"
                " the model in DistributedDataParallel with GPU device_ids; train on CPU with"
                " --num-gpus 1, or use GPUs (MODEL.DEVICE cuda)."
            )
        super().__init__(cfg)

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
        # DefaultTrainer.__init__ made a plain DetectionCheckpointer just before calling this; the
        # hooks (periodic checkpoints) must get ours.
        self.checkpointer = self.build_checkpointer(
            self.cfg, self.model, trainer=weakref.proxy(self)
        )
        return super().build_hooks()

    def resume_or_load(self, resume=True):
        """
        Resume this step from its last checkpoint if ``resume`` and one exists; else start step
        t >= 1 from step t-1's model (grown), or load ``MODEL.WEIGHTS`` at step 0 / for joint.
        """
        cfg = self.cfg
        if resume and self.checkpointer.has_checkpoint():
            return super().resume_or_load(resume=True)
        if cfg.CONTINUAL.STEP > 0 and not cfg.CONTINUAL.JOINT:
            self.checkpointer.load_previous_step(previous_step_checkpoint(cfg))
            self.start_iter = 0
            return None
        return super().resume_or_load(resume=False)

    def train(self):
        """Train, then return the results of the evaluation that follows the last iteration."""
        super().train()
        return getattr(self, "_last_eval_results", None)

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
