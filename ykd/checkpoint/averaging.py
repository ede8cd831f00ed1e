r"""
Checkpoint averaging (``docs/method.md``): θ = Σ_i w_i·θ_i, key by key, over a selection of keys.

Paper use (Dynamic Y-KD): the weights of a task module are interpolated between consecutive steps,
θ = α·θ_{t-1} + (1-α)·θ_t, to trade old-class against new-class accuracy at no training cost; the
shared trunk is left untouched (it is the step-t trunk in the result). The step-t module is
``task_modules.<t>`` in the step-t checkpoint but ``task_modules.<t-1>`` in the step-(t-1) one
(where it was the student), so the previous step's keys are renamed first (:func:`rename_prefixes`)
and ``include`` keeps the keys both steps have; e.g. for t = 2 and α = 0.25::

    average_checkpoint_files(
        ["step1/model_final.pth", "step2/model_final.pth"],
        [0.25, 0.75],
        rename={"task_modules.1.": "task_modules.2."},
        include=r"^(task_modules\.2|mask_head)\.",
    )

Conventions:

- The LAST input is the *target*: keys that are not averaged (filtered out by ``include`` /
  ``exclude``, or non-float tensors such as BatchNorm's ``num_batches_tracked``) are copied from it,
  and the result has its keys, key order, shapes and dtypes.
- Sums are accumulated in float32 (float64 when any input is float64) and cast back to the target's
  dtype; an input of weight exactly 0 is left out of the sum, so α = 0 and α = 1 reproduce an input
  bit for bit.
- Class-count-dependent tensors are recognised by shape: dim 0 differs, the other dims agree (a
  grown predictor). Their rows follow the rule of :mod:`ykd.modeling.class_growth` (old classes
  first, the box classifier's background row last). ``class_rows="shared"`` averages the rows
  that every input has (:func:`~ykd.modeling.class_growth.shared_class_rows`) and copies the
  other rows from the target, which must have the most rows; ``class_rows="skip"`` copies the
  whole tensor from the target.
- Backbone / trunk: :func:`average_checkpoints` averages every key unless told otherwise;
  ``tools/average_checkpoints.py`` excludes ``^backbone\.`` by default (the paper's "trunk
  untouched").
- The authors' averaging (:data:`OFFICIAL_OPTIONS`; mode "official" of the tools and of the
  averaging hook), as their ``tools/test_same_backbone.py`` does it: every tensor whose key does
  not contain ``backbone.`` and that both inputs have with the same shape is interpolated; a
  tensor whose shape changed (class rows) or that an input lacks is the target's; the trunk may
  come from a third checkpoint (``trunk`` of :func:`average_checkpoint_files`).
"""

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from ykd.modeling.class_growth import has_background_row, shared_class_rows

from .loading import META_KEY, check_same_run, load_checkpoint_file

__all__ = [
    "CLASS_ROWS",
    "OFFICIAL_OPTIONS",
    "TRUNK_PATTERN",
    "average_checkpoints",
    "average_checkpoint_files",
    "load_checkpoint_file",
    "rename_prefixes",
    "replace_trunk",
    "select_keys",
]

CLASS_ROWS = ("shared", "skip")
TRUNK_PATTERN = r"^backbone\."
"""The keys of the shared trunk in a YKDRCNN state dict."""
OFFICIAL_OPTIONS = {"exclude": r"backbone\.", "class_rows": "skip", "shared_keys_only": True}
"""The options of :func:`average_checkpoints` that make the authors' averaging."""
_WEIGHT_SUM_TOLERANCE = 1e-6


def _key_filter(include: str | None, exclude: str | None) -> Callable[[str], bool]:
    """A predicate on keys: ``re.search(include)`` matches and ``re.search(exclude)`` does not."""
    patterns = {}
    for name, pattern in (("include", include), ("exclude", exclude)):
        try:
            patterns[name] = re.compile(pattern) if pattern is not None else None
        except re.error as err:
            raise ValueError(f"Invalid {name} regex {pattern!r}: {err}") from err
    inc, exc = patterns["include"], patterns["exclude"]
    return lambda key: (
        (inc is None or inc.search(key) is not None) and (exc is None or exc.search(key) is None)
    )


def select_keys(keys: Iterable[str], include: str | None, exclude: str | None) -> list[str]:
    """The keys that :func:`average_checkpoints` averages (``re.search`` semantics), in order."""
    selected = _key_filter(include, exclude)
    return [k for k in keys if selected(k)]


def _checked_weights(weights: Sequence[float], count: int, normalize: bool) -> list[float]:
    """``weights`` as floats, checked to be finite, >= 0 and to sum to 1 (or rescaled to)."""
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights given for {count} checkpoints")
    if count == 0:
        raise ValueError("No checkpoints to average")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"Weights must be finite and >= 0, got {weights}")
    total = math.fsum(weights)
    if normalize:
        if total <= 0:
            raise ValueError(f"Weights {weights} sum to 0: they cannot be normalized")
        return [w / total for w in weights]
    if abs(total - 1.0) > _WEIGHT_SUM_TOLERANCE:
        raise ValueError(
            f"Weights {weights} sum to {total}, not 1 (use normalize=True, or --normalize, to"
            " rescale them)"
        )
    return weights


def _input_names(names: Sequence[str] | None, count: int) -> list[str]:
    if names is None:
        return [f"input {i}" for i in range(count - 1)] + [f"input {count - 1} (target)"]
    if len(names) != count:
        raise ValueError(f"{len(names)} names given for {count} checkpoints")
    return [str(n) for n in names]


def _check_keys(
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    selected: Callable[[str], bool],
    names: Sequence[str],
) -> None:
    """Raise ``ValueError`` naming the first selected key that one input has and the other lacks."""
    target = state_dicts[-1]
    for state, name in zip(state_dicts[:-1], names[:-1], strict=True):
        for present, absent, has, lacks in (
            (target, state, names[-1], name),
            (state, target, name, names[-1]),
        ):
            missing = next((k for k in present if selected(k) and k not in absent), None)
            if missing is not None:
                raise ValueError(
                    f"Key {missing!r} is in {has} but not in {lacks}: the averaged keys must be the"
                    " same in every input (filter them with include/exclude, or rename them)"
                )


def _weighted_sum(
    tensors: Sequence[torch.Tensor], weights: Sequence[float], like: torch.Tensor
) -> torch.Tensor:
    """Σ_i w_i·x_i of same-shape float tensors, accumulated in float32/float64, cast like ``like``."""
    accumulate = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    total = None
    for tensor, weight in zip(tensors, weights, strict=True):
        if weight == 0:
            continue
        term = tensor.to(device=like.device, dtype=accumulate) * weight
        total = term if total is None else total.add_(term)
    return total.to(like.dtype)


def _average_tensor(
    key: str,
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    class_rows: str,
    names: Sequence[str],
) -> torch.Tensor:
    """The weighted average of one key's tensors, in the target's (last tensor's) shape and dtype."""
    target = tensors[-1]
    for tensor, name in zip(tensors, names, strict=True):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{key!r} in {name} is a {type(tensor).__name__}, not a tensor")
    if not target.is_floating_point():
        return target.clone()
    for tensor, name in zip(tensors[:-1], names[:-1], strict=True):
        if not tensor.is_floating_point():
            raise TypeError(
                f"{key!r} is {tensor.dtype} in {name} but {target.dtype} in {names[-1]}:"
                " a float tensor can only be averaged with float tensors"
            )
        if tensor.shape == target.shape:
            continue
        if (
            tensor.dim() != target.dim()
            or tensor.dim() == 0
            or tensor.shape[1:] != target.shape[1:]
        ):
            raise ValueError(
                f"{key!r} has shape {tuple(tensor.shape)} in {name} but {tuple(target.shape)} in"
                f" {names[-1]}: only dim 0 (the class rows of a predictor) may differ"
            )
        if class_rows == "shared" and tensor.shape[0] > target.shape[0]:
            raise ValueError(
                f"{key!r} has {tensor.shape[0]} rows in {name} but {target.shape[0]} in"
                f" {names[-1]}, the target: put the checkpoint of the latest step last"
            )
    if all(t.shape == target.shape for t in tensors):
        return _weighted_sum(tensors, weights, target)
    if class_rows == "skip":
        return target.clone()
    rows = shared_class_rows([len(t) for t in tensors], background_last=has_background_row(key))
    result = target.clone()
    shared = [t[r] for t, r in zip(tensors, rows, strict=True)]
    result[rows[-1]] = _weighted_sum(shared, weights, target)
    return result


def _in_every_input(
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    selected: Callable[[str], bool],
    same_shape: bool,
) -> Callable[[str], bool]:
    """``selected`` restricted to the keys every input has (with the target's shape if asked)."""
    target = state_dicts[-1]

    def keep(key: str) -> bool:
        shape = getattr(target[key], "shape", None)
        return selected(key) and all(
            key in state and (not same_shape or getattr(state[key], "shape", None) == shape)
            for state in state_dicts
        )

    return keep


def average_checkpoints(
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    include: str | None = None,
    exclude: str | None = None,
    class_rows: str = "shared",
    *,
    normalize: bool = False,
    names: Sequence[str] | None = None,
    shared_keys_only: bool = False,
) -> dict[str, torch.Tensor]:
    """
    The weighted average Σ_i w_i·θ_i of model state dicts (conventions in the module docstring).

    Args:
        state_dicts: N >= 1 state dicts (key -> tensor); the last one is the target.
        weights: N weights, >= 0, summing to 1 (to within 1e-6) unless ``normalize``.
        include, exclude: regexes (``re.search``): only the keys matching ``include`` (all keys
            if None) and not matching ``exclude`` are averaged; the others are copied from the
            target. Every input must have the same set of averaged keys.
        class_rows: "shared" (average the class rows that every input has, keep the target's
            other rows) or "skip" (copy class-count-dependent tensors from the target).
        normalize: rescale ``weights`` to sum to 1 instead of requiring it.
        names: N names of the inputs (e.g. file paths), used in error messages.
        shared_keys_only: a selected key that an input lacks is copied from the target instead
            of being an error; with ``class_rows="skip"``, so is one of another shape.

    Returns:
        A new state dict with the target's keys, order, shapes and dtypes; no tensor aliases an
        input's.

    Raises:
        ValueError: bad weights / class_rows / regex; the averaged keys differ (names the first
            differing key and both inputs); or a shape mismatch other than in dim 0.
        TypeError: a value is not a tensor, or a float tensor meets a non-float one.
    """
    if class_rows not in CLASS_ROWS:
        raise ValueError(f"class_rows must be one of {CLASS_ROWS}, got {class_rows!r}")
    weights = _checked_weights(weights, len(state_dicts), normalize)
    names = _input_names(names, len(state_dicts))
    selected = _key_filter(include, exclude)
    if shared_keys_only:
        selected = _in_every_input(state_dicts, selected, same_shape=class_rows == "skip")
    else:
        _check_keys(state_dicts, selected, names)
    averaged = {}
    for key, value in state_dicts[-1].items():
        if not selected(key):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{key!r} in {names[-1]} is a {type(value).__name__}, not a tensor")
            averaged[key] = value.clone()
            continue
        tensors = [state[key] for state in state_dicts]
        averaged[key] = _average_tensor(key, tensors, weights, class_rows, names)
    return averaged


def rename_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """
    ``state_dict`` with each key that starts with an old prefix of ``prefixes`` (old -> new; the
    first matching entry applies) starting with the new prefix instead, e.g.
    ``{"task_modules.1.": "task_modules.2."}``. Raises ``ValueError`` if two keys collide.
    """
    renamed = {}
    for key, value in state_dict.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        new_key = key if old is None else prefixes[old] + key[len(old) :]
        if new_key in renamed:
            raise ValueError(f"Renaming {key!r} to {new_key!r} collides with another key")
        renamed[new_key] = value
    return renamed


def replace_trunk(
    state_dict: Mapping[str, torch.Tensor], trunk: Mapping[str, torch.Tensor], *, name: str
) -> dict[str, torch.Tensor]:
    """
    ``state_dict`` with the trunk (the keys matching :data:`TRUNK_PATTERN`) of the state dict
    ``trunk`` (of the checkpoint ``name``), which must have every trunk key in the same shape.
    """
    is_trunk = _key_filter(TRUNK_PATTERN, None)
    replaced = dict(state_dict)
    for key, value in state_dict.items():
        if not is_trunk(key):
            continue
        if key not in trunk or trunk[key].shape != value.shape:
            found = "missing" if key not in trunk else f"of shape {tuple(trunk[key].shape)}"
            raise ValueError(
                f"The trunk checkpoint {name} has {key!r} {found}, the model"
                f" {tuple(value.shape)}: give a checkpoint of the same trunk"
            )
        replaced[key] = trunk[key].clone()
    return replaced


def average_checkpoint_files(
    paths: Sequence[str | os.PathLike],
    weights: Sequence[float],
    include: str | None = None,
    exclude: str | None = None,
    class_rows: str = "shared",
    *,
    normalize: bool = False,
    rename: Mapping[str, str] | None = None,
    shared_keys_only: bool = False,
    trunk: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """
    Load checkpoint files (:func:`load_checkpoint_file`), check that their ``ykd_meta`` records
    (where present) are steps of one run (same scenario; class names and classes per task of one
    start the other's), and average their models (:func:`average_checkpoints`, the last path is
    the target).

    Args:
        paths, weights, include, exclude, class_rows, normalize, shared_keys_only: as for
            :func:`average_checkpoints`.
        rename: key prefixes renamed (:func:`rename_prefixes`) in every input but the target
            before averaging, e.g. ``{"task_modules.1.": "task_modules.2."}``.
        trunk: a checkpoint whose trunk replaces the result's (:func:`replace_trunk`); None:
            the trunk is as averaged (or the target's).

    Returns:
        ``{"model": averaged state dict, "ykd_meta": the target's (if it has one), "averaging":
        {"inputs", "weights" (normalized if asked), "include", "exclude", "class_rows",
        "rename", "shared_keys_only", "trunk"}}``: a model, not a resumable training state (no
        optimizer, scheduler or iteration).
    """
    if class_rows not in CLASS_ROWS:
        raise ValueError(f"class_rows must be one of {CLASS_ROWS}, got {class_rows!r}")
    names = [os.fspath(p) for p in paths]
    weights = _checked_weights(weights, len(names), normalize)
    _key_filter(include, exclude)  # a bad regex fails before any file is loaded
    checkpoints = [load_checkpoint_file(p) for p in names]
    metas = [c.get(META_KEY) for c in checkpoints]
    check_same_run(metas, names)
    states = [c["model"] for c in checkpoints]
    if rename:
        states = [rename_prefixes(s, rename) for s in states[:-1]] + [states[-1]]
    model = average_checkpoints(
        states,
        weights,
        include,
        exclude,
        class_rows,
        names=names,
        shared_keys_only=shared_keys_only,
    )
    if trunk is not None:
        trunk = os.fspath(trunk)
        model = replace_trunk(model, load_checkpoint_file(trunk)["model"], name=trunk)
    result = {"model": model}
    if metas[-1] is not None:
        result[META_KEY] = metas[-1]
    result["averaging"] = {
        "inputs": names,
        "weights": weights,
        "include": include,
        "exclude": exclude,
        "class_rows": class_rows,
        "rename": dict(rename) if rename else None,
        "shared_keys_only": shared_keys_only,
        "trunk": trunk,
    }
    return result
