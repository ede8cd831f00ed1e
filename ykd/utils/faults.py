"""
Faults that stop a run early with one line naming the cause and the fix: a non-finite training
loss (:class:`NonFiniteLossError`, raised by :func:`check_finite_losses`) and an output folder that
cannot be written (:func:`check_output_writable`).
"""

import math
import os
import tempfile
from collections.abc import Mapping

import torch
from detectron2.utils.events import get_event_storage

__all__ = ["NonFiniteLossError", "check_finite_losses", "check_output_writable"]


class NonFiniteLossError(FloatingPointError):
    """
    A training loss term is NaN or infinite. Raised before the backward pass, so the weights are
    not updated by the bad iteration and no checkpoint is written after it.

    Attributes:
        iteration: the training iteration (None outside a Detectron2 ``EventStorage``).
        terms: the non-finite terms and their values, e.g. ``{"loss_mask": nan}``.
        checkpoint: the last checkpoint of the run (the trainer fills it in), or None.
    """

    def __init__(
        self, iteration: int | None, terms: Mapping[str, float], checkpoint: str | None = None
    ):
        super().__init__(iteration, dict(terms), checkpoint)
        self.iteration = iteration
        self.terms = dict(terms)
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        where = "" if self.iteration is None else f" at iteration {self.iteration}"
        terms = ", ".join(f"{name}={value}" for name, value in self.terms.items())
        if self.checkpoint:
            kept = f"the last good checkpoint {self.checkpoint} is kept"
        else:
            kept = "no checkpoint was written before it"
        return (
            f"Non-finite loss{where}: {terms}. The weights were not updated by this iteration and"
            f" {kept}. Fix: lower SOLVER.BASE_LR (or lengthen SOLVER.WARMUP_ITERS, or enable"
            " SOLVER.CLIP_GRADIENTS) and check the training data, then rerun with --resume."
        )


def _current_iteration() -> int | None:
    try:
        return get_event_storage().iter
    except AssertionError:  # no EventStorage: called outside a Detectron2 training loop
        return None


def check_finite_losses(losses: Mapping[str, torch.Tensor]) -> None:
    """
    Raise :class:`NonFiniteLossError` naming every non-finite term of ``losses`` (name → scalar
    tensor) with its value, and the iteration of Detectron2's current ``EventStorage``. One host
    synchronisation for all terms together.
    """
    if not losses:
        return
    names = list(losses)
    # A sum stays non-finite when any element is (the loss terms are scalars in practice).
    values = torch.stack([losses[name].detach().float().sum() for name in names])
    if bool(torch.isfinite(values).all()):
        return
    bad = {n: v for n, v in zip(names, values.tolist(), strict=True) if not math.isfinite(v)}
    raise NonFiniteLossError(_current_iteration(), bad)


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_output_writable(
    folder: str,
    *,
    what: str = "Output folder",
    fix: str = "choose a writable output folder or fix its permissions",
) -> None:
    """
    Raise a one-line ``PermissionError`` naming ``folder`` and ``fix`` unless files can be created
    in it (or, if it does not exist yet, in its nearest existing parent, where the run will create
    it). The check writes and removes a probe file; it creates no folder.
    """
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise PermissionError(
            f"{what} {folder} cannot be created: {existing} is a file, not a folder; {fix}."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".ykd_write_probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if existing == os.path.abspath(folder) else f" (its parent {existing})"
        raise PermissionError(
            f"{what} {folder} is not writable{where}: {err.strerror}; {fix}."
        ) from err
