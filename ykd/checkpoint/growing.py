"""
Checkpoints of continual steps: every checkpoint records which scenario, step and classes it holds,
a checkpoint only loads into a model of the same step, and step t starts from step t-1's checkpoint
through one explicit path that grows it.

Typical use by a trainer at step t::

    model = build_model(cfg)  # YKDRCNN with t+1 task modules
    meta = make_ykd_meta(model, scenario="15-5", step=t, class_names=seen_class_names)
    checkpointer = YKDCheckpointer(model, output_dir, ykd_meta=meta, optimizer=..., scheduler=...)
    if t > 0 and not checkpointer.has_checkpoint():
        checkpointer.load_previous_step(previous_step_model_path)
    else:
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=True)
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ykd.modeling import YKDRCNN, grow_state_dict
from ykd.modeling.class_growth import mib_init_
from ykd.utils import torch_save_atomic, write_text_atomic

__all__ = [
    "CheckpointMismatchError",
    "YKDCheckpointer",
    "make_ykd_meta",
    "previous_step_meta",
    "check_ykd_meta",
    "grow_from_previous_step",
]

META_KEY = "ykd_meta"
# What a checkpoint must share with the model it is loaded into: the classes and their task
# modules. The scenario and step are recorded, not compared: scenarios with the same step-0
# classes (15-5, 15-1) share step 0, and a joint model of all classes serves every scenario.
_META_FIELDS = ("class_names", "num_modules", "num_classes_per_task")


class CheckpointMismatchError(ValueError):
    """A checkpoint holds another scenario, step or classes than the model it is loaded into."""


def make_ykd_meta(
    model: YKDRCNN, *, scenario: str, step: int, class_names: Sequence[str]
) -> dict[str, Any]:
    """
    The meta record of ``model`` at ``step`` of ``scenario``:
    ``{"scenario", "step", "class_names", "num_modules", "num_classes_per_task"}``.

    Args:
        class_names: names of all classes seen up to ``step``, in class-index order.
    """
    per_task = model.num_classes_per_task
    if len(class_names) != sum(per_task):
        raise ValueError(
            f"{len(class_names)} class names given for a model of {sum(per_task)} classes {per_task}"
        )
    return {
        "scenario": scenario,
        "step": int(step),
        "class_names": list(class_names),
        "num_modules": len(per_task),
        "num_classes_per_task": list(per_task),
    }


def previous_step_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The meta record that the checkpoint of the step before ``meta``'s must have."""
    per_task = list(meta["num_classes_per_task"])[:-1]
    return {
        "scenario": meta["scenario"],
        "step": meta["step"] - 1,
        "class_names": list(meta["class_names"])[: sum(per_task)],
        "num_modules": meta["num_modules"] - 1,
        "num_classes_per_task": per_task,
    }


def _describe(meta: Mapping[str, Any]) -> str:
    return (
        f"scenario {meta['scenario']} step {meta['step']} ({meta['num_modules']} task modules,"
        f" classes per task {list(meta['num_classes_per_task'])})"
    )


def check_ykd_meta(
    found: Mapping[str, Any] | None, expected: Mapping[str, Any], *, path: str
) -> None:
    """
    Raise a one-line :class:`CheckpointMismatchError` naming both records and the fix when the meta
    record ``found`` in the checkpoint at ``path`` differs from ``expected``.
    """
    if found is None:
        raise CheckpointMismatchError(
            f"Checkpoint {path} has no {META_KEY!r} record, but the model is {_describe(expected)}:"
            " save Y-KD checkpoints with YKDCheckpointer."
        )
    if all(found.get(k) == expected[k] for k in _META_FIELDS):
        return
    step = expected["step"]
    fix = "load the checkpoint of the same scenario and step"
    if step > 0:
        fix += f", or start step {step} from a step-{step - 1} checkpoint with load_previous_step()"
    differing = [k for k in _META_FIELDS if found.get(k) != expected[k]]
    raise CheckpointMismatchError(
        f"Checkpoint {path} holds {_describe(found)} but the model is {_describe(expected)}"
        f" (differing: {', '.join(differing)}): {fix}."
    )


def _previous_key(key: str, student: int) -> str:
    """The key of a step-t parameter in the step-(t-1) state dict (student = t)."""
    for prefix, previous in (
        (f"task_modules.{student}.", f"task_modules.{student - 1}."),
        ("teacher_mask_head.", "mask_head."),
        ("teacher_backbone.", "backbone."),
    ):
        if key.startswith(prefix):
            return previous + key[len(prefix) :]
    return key


def grow_from_previous_step(model: YKDRCNN, previous_state: Mapping[str, torch.Tensor]) -> None:
    """
    Load the state dict of a step-(t-1) YKDRCNN (t task modules) into the step-t ``model`` (t+1
    modules): trunk and modules 0..t-1 are copied; module t starts from module t-1 with its
    predictor grown (old and background rows copied, as
    :func:`~ykd.modeling.class_growth.shared_class_rows` matches them; new rows as freshly built,
    or MiB-initialised if ``model.new_class_init == "mib"``); the mask head grows the same way;
    the teacher copies (``teacher_backbone``, ``teacher_mask_head``) take the step-(t-1) trunk
    and mask head.
    """
    student = model.num_tasks - 1
    if student < 1:
        raise ValueError("grow_from_previous_step needs a model with at least 2 task modules")
    if any(k.startswith(f"task_modules.{student}.") for k in previous_state):
        raise ValueError(
            f"The previous step's state already has task module {student}: it is not a"
            f" step-{student - 1} model"
        )
    fresh = model.state_dict()
    predictor = f"task_modules.{student}.roi_heads.box_predictor."
    class_dependent = [
        predictor + name
        for name in ("cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias")
    ] + ["mask_head.head.predictor.weight", "mask_head.head.predictor.bias"]
    previous_state = {k: torch.as_tensor(v) for k, v in previous_state.items()}
    # The distiller's own parameters (interactive KD's encoders and decoders) belong to one step:
    # every step starts them afresh.
    previous_state.update({k: v for k, v in fresh.items() if k.startswith("distiller.")})
    sources = {k: _previous_key(k, student) for k in fresh}
    model.load_state_dict(grow_state_dict(previous_state, fresh, sources, class_dependent))
    if model.new_class_init == "mib":
        mib_init_(model.task_modules[-1].box_predictor.cls_score, model.num_classes_per_task[-1])


class YKDCheckpointer(DetectionCheckpointer):
    """
    :class:`DetectionCheckpointer` that stores the meta record ``ykd_meta`` in every checkpoint it
    saves, writes checkpoints and ``last_checkpoint`` atomically (temporary file, then rename),
    refuses (one-line ``ValueError``) to load a Y-KD checkpoint of another scenario or step, and
    offers :meth:`load_previous_step`, the explicit path from step t-1 to step t. Checkpoints
    without Y-KD task modules (e.g. ImageNet weights) load as with Detectron2.
    """

    def __init__(self, model, save_dir: str = "", *, ykd_meta: Mapping[str, Any], **kwargs):
        """
        Args:
            model, save_dir, kwargs: as for :class:`DetectionCheckpointer`.
            ykd_meta: the model's record, from :func:`make_ykd_meta`.
        """
        super().__init__(model, save_dir, **kwargs)
        self.ykd_meta = dict(ykd_meta)

    def save(self, name: str, **kwargs: Any) -> None:
        """
        Save ``<save_dir>/<name>.pth`` in fvcore's format (``"model"``, the checkpointables'
        state dicts, ``kwargs`` such as ``iteration``) plus our meta record, atomically: a run
        killed while saving leaves the previous checkpoint and ``last_checkpoint`` as they were.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update({META_KEY: self.ykd_meta, **kwargs})
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        torch_save_atomic(data, path)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Point ``<save_dir>/last_checkpoint`` at ``last_filename_basename``, atomically."""
        write_text_atomic(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    def _load_file(self, filename: str) -> dict[str, Any]:
        checkpoint = super()._load_file(filename)
        model_state = checkpoint.get("model", {})
        if META_KEY in checkpoint or any(k.startswith("task_modules.") for k in model_state):
            check_ykd_meta(checkpoint.get(META_KEY), self.ykd_meta, path=filename)
        return checkpoint

    def load_previous_step(self, path: str) -> None:
        """
        Start step t from the checkpoint of step t-1 at ``path`` (see
        :func:`grow_from_previous_step`); its meta record must be ``previous_step_meta`` of ours.
        """
        path = self.path_manager.get_local_path(path)
        checkpoint = self._torch_load(path)
        check_ykd_meta(checkpoint.get(META_KEY), previous_step_meta(self.ykd_meta), path=path)
        grow_from_previous_step(self.model, checkpoint["model"])
        self.logger.info(f"Started step {self.ykd_meta['step']} from {path}")
