"""
The layout of class-count-dependent tensors, and growing them to more classes.

One rule for every tensor whose dim 0 follows the classes (a predictor's rows): the rows of the old
classes come first, in class order, then those of the new classes; Detectron2's box classifier
``cls_score`` (``(K+1, D)`` / ``(K+1,)``) keeps the background row LAST, whatever K. Box regressors
``bbox_pred`` (``(4K, D)``) and mask predictors (``(K, C, 1, 1)``) have no background row.
:func:`shared_class_rows` applies the rule; it serves growth in memory (``YKDRCNN.add_task``), on
state dicts (:func:`grow_state_dict`, when step t starts from a step-(t-1) checkpoint) and
checkpoint averaging (``ykd.checkpoint.averaging``). New rows are default-initialised (or
MiB-initialised).
"""

import math
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "BACKGROUND_LAST_SUFFIXES",
    "has_background_row",
    "shared_class_rows",
    "copy_class_rows",
    "grown_linear",
    "grown_conv",
    "mib_init_",
    "grow_state_dict",
]

BACKGROUND_LAST_SUFFIXES = ("cls_score.weight", "cls_score.bias")
"""State-dict keys (by suffix) of the class-dependent tensors whose last row is the background's."""


def has_background_row(key: str) -> bool:
    """Whether the class-dependent tensor of state-dict key ``key`` has the background row last."""
    return key.endswith(BACKGROUND_LAST_SUFFIXES)


def shared_class_rows(num_rows: Sequence[int], *, background_last: bool) -> list[torch.Tensor]:
    """
    The rows that tensors of one class-dependent layer at several class counts have in common.

    Args:
        num_rows: the number of rows (dim 0) of each tensor, e.g. ``[16, 21]`` for a classifier of
            15 then 20 classes (+ background).
        background_last: whether the last row of each tensor is the background's.

    Returns:
        Per tensor, the (S,) indices of the S shared rows, in the same order for every tensor: the
        first ``min(num_rows)`` rows (old classes first), or with ``background_last`` the first
        ``min(num_rows) - 1`` rows and then each tensor's last row. E.g. ``[16, 21]`` with
        background: ``[0..14, 15]`` and ``[0..14, 20]``.
    """
    shared = min(num_rows)
    if not background_last:
        return [torch.arange(shared) for _ in num_rows]
    return [torch.cat([torch.arange(shared - 1), torch.tensor([n - 1])]) for n in num_rows]


def copy_class_rows(
    fresh: torch.Tensor, old: torch.Tensor, *, background_last: bool
) -> torch.Tensor:
    """
    ``fresh`` (the default-initialised tensor of the grown layer) with the rows that it shares
    with ``old`` (:func:`shared_class_rows`: the old classes, and the background) taken from
    ``old``.

    Args:
        fresh: (K * r [+ 1], ...) tensor, K = number of classes after growth, r = rows per class.
        old: (K_old * r [+ 1], ...) tensor before growth, same trailing shape.
        background_last: whether the last row belongs to the background (classification logits).

    Returns:
        A new tensor shaped like ``fresh``.
    """
    if fresh.shape[1:] != old.shape[1:] or len(fresh) < len(old):
        raise ValueError(
            f"Cannot grow a tensor of shape {tuple(old.shape)} to {tuple(fresh.shape)}"
        )
    grown = fresh.detach().clone()
    rows_fresh, rows_old = shared_class_rows(
        [len(fresh), len(old)], background_last=background_last
    )
    grown[rows_fresh.to(grown.device)] = old[rows_old.to(old.device)].to(grown.device)
    return grown


def _copy_grown_(new: nn.Module, old: nn.Module, background_last: bool) -> nn.Module:
    with torch.no_grad():
        for name, param in new.named_parameters():
            param.copy_(copy_class_rows(param, getattr(old, name), background_last=background_last))
    return new.to(old.weight.device)


def grown_linear(
    old: nn.Linear, out_features: int, *, std: float, background_last: bool
) -> nn.Linear:
    """
    A copy of ``old`` with ``out_features`` outputs: new rows ~ N(0, std²) with zero bias (as
    Detectron2 initialises its box predictor), old rows copied.
    """
    new = nn.Linear(old.in_features, out_features)
    nn.init.normal_(new.weight, std=std)
    nn.init.constant_(new.bias, 0)
    return _copy_grown_(new, old, background_last)


def grown_conv(old: nn.Conv2d, out_channels: int, *, std: float) -> nn.Conv2d:
    """
    A copy of the 1×1 prediction conv ``old`` (Detectron2's ``Conv2d``) with ``out_channels``
    outputs: new channels ~ N(0, std²) with zero bias, old channels copied.
    """
    new = type(old)(old.in_channels, out_channels, kernel_size=old.kernel_size)
    nn.init.normal_(new.weight, std=std)
    nn.init.constant_(new.bias, 0)
    return _copy_grown_(new, old, background_last=False)


@torch.no_grad()
def mib_init_(cls_score: nn.Linear, num_new_classes: int) -> None:
    """
    MiB initialisation of the ``num_new_classes`` rows before the background row (the last one):
    they copy the background's weights, and the new and background biases become
    ``b_bg - log(num_new_classes + 1)``, so that they split the old background probability evenly.
    """
    bias = cls_score.bias[-1] - math.log(num_new_classes + 1)
    new = slice(-1 - num_new_classes, -1)
    cls_score.weight[new] = cls_score.weight[-1]
    cls_score.bias[new] = bias
    cls_score.bias[-1] = bias


def grow_state_dict(
    previous: Mapping[str, torch.Tensor],
    fresh: Mapping[str, torch.Tensor],
    source_keys: Mapping[str, str],
    class_dependent: Collection[str],
) -> dict[str, torch.Tensor]:
    """
    The state dict of a grown model, from the state dict of the model before growth.

    Args:
        previous: state dict before growth.
        fresh: state dict of the freshly built grown model (gives the new rows and the key set).
        source_keys: for each key of ``fresh``, the key of ``previous`` it comes from.
        class_dependent: the keys of ``fresh`` whose dim 0 may grow (the rows follow the module
            docstring's rule; :func:`has_background_row` tells the classifier's).

    Returns:
        A state dict with the keys of ``fresh``.

    Raises:
        KeyError / ValueError: one-line messages naming the first missing key or wrong shape.
    """
    grown = {}
    for key, value in fresh.items():
        source = source_keys[key]
        if source not in previous:
            raise KeyError(f"The previous step's state has no {source!r} (needed for {key!r})")
        old = previous[source]
        if old.shape == value.shape:
            grown[key] = old.clone()
        elif key in class_dependent:
            grown[key] = copy_class_rows(value, old, background_last=has_background_row(key))
        else:
            raise ValueError(
                f"{source!r} has shape {tuple(old.shape)} in the previous step but {key!r} has"
                f" shape {tuple(value.shape)}, and it is not a class-dependent tensor"
            )
    return grown
