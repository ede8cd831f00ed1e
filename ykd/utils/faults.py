"""
Faults that stop a run early with one line naming the cause and the fix: a non-finite training
loss (:class:`NonFiniteLossError`, raised by :func:`check_finite_losses` on every process of a
multi-process run alike) and an output folder that cannot be written (:func:`check_output_writable`).
"""

import math
import os
import tempfile
from collections.abc import Mapping

import torch
import torch.distributed as dist
from detectron2.utils import comm
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
        ranks: in a multi-process run, the ranks whose loss was non-finite (every rank raises
            the same error, naming the terms of the first of them); None in a single process.
    """

    def __init__(
        self,
        iteration: int | None,
        terms: Mapping[str, float],
        checkpoint: str | None = None,
        ranks: list[int] | None = None,
    ):
        super().__init__(iteration, dict(terms), checkpoint, ranks)
        self.iteration = iteration
        self.terms = dict(terms)
        self.checkpoint = checkpoint
        self.ranks = None if ranks is None else list(ranks)

    def __str__(self) -> str:
        where = "" if self.iteration is None else f" at iteration {self.iteration}"
        if self.ranks is not None:
            where += f" on rank {', '.join(map(str, self.ranks))}"
            where += " (every process stops)"
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

    In a multi-process run every process must call it at every iteration: the processes agree
    through one all-reduce of a one-element flag (on the losses' device), and when any of them
    has a non-finite term all of them raise the same error (terms of the lowest such rank), so
    that none is left waiting in the backward pass's gradient all-reduce of the others.
    """
    distributed = comm.get_world_size() > 1
    if not losses and not distributed:
        return
    names = list(losses)
    # A sum stays non-finite when any element is (the loss terms are scalars in practice).
    values = torch.stack(
        [losses[name].detach().float().sum() for name in names] or [torch.zeros(())]
    )
    finite = torch.isfinite(values).all()
    if distributed:
        flag = (~finite).to(torch.int32).reshape(1)
        dist.all_reduce(flag)
        if int(flag.item()) == 0:
            return
        local = values.tolist() if not bool(finite) else None
        reports = comm.all_gather(None if local is None else dict(zip(names, local, strict=True)))
        ranks = [rank for rank, report in enumerate(reports) if report is not None]
        first = reports[ranks[0]]
        bad = {n: v for n, v in first.items() if not math.isfinite(v)}
        raise NonFiniteLossError(_current_iteration(), bad, ranks=ranks)
    if bool(finite):
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
