"""Per-term weights of a loss dict, keyed by loss name or name prefix (e.g. for stage schedules)."""

from collections.abc import Mapping

import torch

__all__ = ["check_loss_weights", "loss_weight", "scale_losses"]


def check_loss_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """
    ``weights`` as a plain dict of floats.

    Raises:
        ValueError: a key is not a non-empty string or a weight is negative or not a number.
    """
    checked = {}
    for key, weight in weights.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"Loss weight keys must be loss names or prefixes, got {key!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"The weight of {key!r} must be a number >= 0, got {weight!r}")
        checked[key] = float(weight)
    return checked


def loss_weight(name: str, weights: Mapping[str, float]) -> float:
    """
    The weight of loss ``name``: that of the longest key of ``weights`` that ``name`` starts with
    (a full name is its own longest prefix), 1.0 if none.

    Example: with ``{"loss": 0.0, "loss_kd": 1.0}``, ``loss_cls`` gets 0 and ``loss_kd_box`` 1.
    """
    keys = [k for k in weights if name.startswith(k)]
    return weights[max(keys, key=len)] if keys else 1.0


def scale_losses(
    losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Each loss multiplied by its :func:`loss_weight` (losses of weight 1 are returned as they are)."""
    scaled = {}
    for name, value in losses.items():
        weight = loss_weight(name, weights)
        scaled[name] = value if weight == 1.0 else value * weight
    return scaled
