"""
Reading checkpoint files as untrusted input (tensors and plain containers only), and checking
that the checkpoints of an average are steps of one run.
"""

import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["META_KEY", "check_same_run", "load_checkpoint_file"]

META_KEY = "ykd_meta"
"""The key of a checkpoint's meta record (scenario, step, classes), as YKDCheckpointer saves it."""


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's weights-only message that names what was refused (not its advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """
    Load a Detectron2 checkpoint without running pickled code: ``torch.load(weights_only=True)``
    on the CPU (checkpoints are untrusted input). A bare state dict is returned as ``{"model": it}``.

    Returns:
        The checkpoint dict; ``"model"`` maps keys to tensors.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated or not a PyTorch file, holds objects that are not tensors or plain
            containers (refused, never executed), or is not a checkpoint of a model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # unreadable file (permissions, I/O): not a format problem
        raise
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"Refused to load {path}: the weights-only unpickler met something other than tensors"
            " and plain containers (a pickled Python object, which was not run, or not a PyTorch"
            f" file at all): {_unpickler_reason(err)}"
        ) from err
    except Exception as err:
        raise ValueError(
            f"Cannot read {path} as a PyTorch checkpoint (truncated, corrupt, or another format):"
            f" {type(err).__name__}: {err}"
        ) from err
    if isinstance(checkpoint, dict) and "model" not in checkpoint and checkpoint:
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            checkpoint = {"model": checkpoint}
    model = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise ValueError(
            f"{path} is not a model checkpoint: expected a dict whose 'model' entry maps parameter"
            " names to tensors"
        )
    return checkpoint


def _describe_meta(meta: Mapping[str, Any]) -> str:
    return (
        f"scenario {meta.get('scenario')} step {meta.get('step')}"
        f" (classes per task {list(meta.get('num_classes_per_task') or [])})"
    )


def _is_prefix_pair(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """One of ``a``, ``b`` starts the other."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return list(long[: len(short)]) == list(short)


def check_same_run(metas: Sequence[Mapping[str, Any] | None], names: Sequence[str]) -> None:
    """Raise ``ValueError`` if an input's ykd_meta is not of the target's run (where both exist)."""
    target = metas[-1]
    for meta, name in zip(metas[:-1], names[:-1], strict=True):
        if meta is None or target is None:
            continue
        problems = []
        # Step 0 is shared by the scenarios with the same step-0 classes (15-5 and 15-1): a
        # step-0 checkpoint of another scenario is of this run when its classes start it.
        if meta.get("scenario") != target.get("scenario") and meta.get("step") != 0:
            problems.append("the scenarios differ")
        for field in ("class_names", "num_classes_per_task"):
            if not _is_prefix_pair(meta.get(field) or [], target.get(field) or []):
                problems.append(f"neither {field} starts the other")
        if problems:
            raise ValueError(
                f"{name} holds {_describe_meta(meta)} and {names[-1]} holds"
                f" {_describe_meta(target)}: not steps of one run ({'; '.join(problems)})"
            )
