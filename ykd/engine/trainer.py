"""The trainer of a continual step: Detectron2's DefaultTrainer with the continual evaluator."""

from detectron2.engine import DefaultTrainer

from ..evaluation import ContinualEvaluator


class ContinualTrainer(DefaultTrainer):
    """
    Trains one step of a continual scenario; evaluation reports old/new/all-class AP and writes
    ``eval.json`` into ``OUTPUT_DIR``.
    """

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        # The step datasets are cut on the fly: never reuse a cached COCO conversion of them.
        return ContinualEvaluator(
            dataset_name, output_dir=output_folder or cfg.OUTPUT_DIR, allow_cached_coco=False
        )

    def train(self):
        """Train, then return the results of the evaluation that follows the last iteration."""
        super().train()
        return getattr(self, "_last_eval_results", None)
