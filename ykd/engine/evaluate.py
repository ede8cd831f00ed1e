"""Evaluating a checkpoint of a step: the step's final model or other weights (e.g. averaged)."""

import os

__all__ = ["evaluate_checkpoint", "evaluation_target", "split_weights"]


def split_weights(opts: list[str]) -> tuple[list[str], str | None]:
    """``opts`` (``KEY VALUE`` pairs) without a ``MODEL.WEIGHTS`` pair, and its value (or None)."""
    keys = list(opts[0::2])
    if "MODEL.WEIGHTS" not in keys:
        return list(opts), None
    index = 2 * keys.index("MODEL.WEIGHTS")
    return list(opts[:index]) + list(opts[index + 2 :]), opts[index + 1]


def evaluation_target(cfg, weights: str | None = None) -> tuple[str, str]:
    """
    The checkpoint to evaluate for the step of ``cfg`` and the folder its ``eval.json`` goes to:
    the step's ``model_final.pth`` into the step's folder, or ``weights`` (e.g. an averaged
    checkpoint) into ``<step folder>/eval_<name>/``. On the dev split (``CONTINUAL.TEST_SPLIT``
    "dev") the folders are ``<step folder>/eval_dev/`` and ``<step folder>/eval_<name>_dev/``: a
    dev evaluation never replaces a test one.

    Raises:
        FileNotFoundError: the checkpoint does not exist (the message names the fix).
    """
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    weights = weights or final
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"--eval-only: no checkpoint {weights}; train this step first or set MODEL.WEIGHTS."
        )
    dev = cfg.CONTINUAL.TEST_SPLIT == "dev"
    if os.path.abspath(weights) == os.path.abspath(final):
        return weights, os.path.join(cfg.OUTPUT_DIR, "eval_dev") if dev else cfg.OUTPUT_DIR
    stem = os.path.splitext(os.path.basename(weights))[0]
    return weights, os.path.join(cfg.OUTPUT_DIR, f"eval_{stem}" + ("_dev" if dev else ""))


def evaluate_checkpoint(trainer, cfg, weights: str, output_folder: str) -> dict:
    """
    Evaluate the checkpoint ``weights`` on the test set of the step of ``cfg``, writing
    ``eval.json`` into ``output_folder``; ``trainer`` (a :class:`ContinualTrainer` class or
    instance) builds the model, its checkpointer (which checks the checkpoint's step) and the
    evaluators. Returns the evaluation results.
    """
    model = trainer.build_model(cfg)
    trainer.build_checkpointer(cfg, model).load(weights)
    return trainer.test_into(cfg, model, output_folder)
