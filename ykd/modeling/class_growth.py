"""
Growing class-dependent layers to more classes: old rows are kept, new rows are default-initialised
(or MiB-initialised). Used in memory by ``YKDRCNN.add_task`` and on state dicts by
:func:`grow_state_dict` when a step-t model starts from a step-(t-1) checkpoint.
"""

import math
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["copy_class_rows", "grown_linear", "grown_conv", "mib_init_", "grow_state_dict"]


def copy_class_rows(
    fresh: torch.Tensor, old: torch.Tensor, *, background_last: bool
) -> torch.Tensor:
    """
    ``fresh`` (the default-initialised tensor of the grown layer) with the rows of the old classes
    taken from ``old``; with ``background_last``, the last (background) row is ``old``'s last row.

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
    num_old_rows = len(old) - int(background_last)
    grown[:num_old_rows] = old[:num_old_rows]
    if background_last:
        grown[-1] = old[-1]
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
    background_last: Mapping[str, bool],
) -> dict[str, torch.Tensor]:
    """
    The state dict of a grown model, from the state dict of the model before growth.

    Args:
        previous: state dict before growth.
        fresh: state dict of the freshly built grown model (gives the new rows and the key set).
        source_keys: for each key of ``fresh``, the key of ``previous`` it comes from.
        background_last: for each class-dependent key whose shape may grow, whether its last row
            is the background's.

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
        elif key in background_last:
            grown[key] = copy_class_rows(value, old, background_last=background_last[key])
        else:
            raise ValueError(
                f"{source!r} has shape {tuple(old.shape)} in the previous step but {key!r} has"
                f" shape {tuple(value.shape)}, and it is not a class-dependent tensor"
            )
    return grown
