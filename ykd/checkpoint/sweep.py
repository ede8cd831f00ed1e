r"""
The α sweep of Dynamic Y-KD (``docs/method.md``): for each α of a grid, the step-t model whose
task module t and mask head are interpolated with the previous step's, θ = α·θ_{t-1} + (1-α)·θ_t
(the trunk is the step-t one), and a table and plot of its old / new / all-class mask AP against α.

α = 0 is the step-t model, α = 1 puts the step-(t-1) student (``task_modules.<t-1>`` of the
step-(t-1) checkpoint, renamed ``task_modules.<t>``) and mask head back into it
(:func:`step_average` also offers the authors' averaging). The evaluation loop is
:func:`ykd.engine.step_averaging.alpha_sweep`; this module is the part without a model.
"""

import math
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from matplotlib.figure import Figure
from tabulate import tabulate

from ..utils import atomic_write
from .averaging import OFFICIAL_OPTIONS, average_checkpoint_files

__all__ = [
    "AVERAGING_MODES",
    "GROUPS",
    "alpha_label",
    "best_alpha",
    "parse_alpha_grid",
    "plot_sweep",
    "step_average",
    "sweep_record",
    "sweep_table",
]

GROUPS = ("old", "new", "all")
# The metric that ranks the αs: the VOC AP of the MMA and Y-KD papers where the evaluation has it
# (CONTINUAL.EVAL_VOC_METRIC), else COCO's AP.
_METRIC_NAMES = {"vocAP": "VOC AP", "AP": "AP"}
AVERAGING_MODES = ("module", "official")
_IOU_TYPES = ("segm", "bbox")
_MAX_ALPHAS = 1001


def _decimal(text: str, grid: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValueError(f"α grid {grid!r}: {text.strip()!r} is not a finite number")
    return value


def parse_alpha_grid(grid: str) -> list[float]:
    """
    The α values of ``"START:STOP:STEP"`` (both ends included), in exact decimal steps:
    ``"0:1:0.25"`` gives ``[0.0, 0.25, 0.5, 0.75, 1.0]``; a single number is a one-value grid.

    Raises:
        ValueError: not a number / three numbers; an α outside [0, 1]; STOP < START; STEP <= 0
            (unless START = STOP), or STEP does not divide STOP − START exactly.
    """
    parts = grid.split(":")
    if len(parts) not in (1, 3):
        raise ValueError(f"α grid {grid!r}: expected START:STOP:STEP (e.g. 0:1:0.25) or one α")
    values = [_decimal(part, grid) for part in parts]
    start, stop, step = values if len(values) == 3 else (values[0], values[0], Decimal(1))
    for name, value in (("START", start), ("STOP", stop)):
        if not 0 <= value <= 1:
            raise ValueError(f"α grid {grid!r}: {name} {value} is outside [0, 1]")
    if stop < start:
        raise ValueError(f"α grid {grid!r}: STOP {stop} is below START {start}")
    if stop == start:
        return [float(start)]
    if step <= 0:
        raise ValueError(f"α grid {grid!r}: STEP {step} must be > 0")
    count, remainder = divmod(stop - start, step)
    if remainder != 0:
        raise ValueError(
            f"α grid {grid!r}: STEP {step} does not divide STOP − START = {stop - start} exactly"
        )
    if count + 1 > _MAX_ALPHAS:
        raise ValueError(f"α grid {grid!r}: {count + 1} values, more than {_MAX_ALPHAS}")
    return [float(start + i * step) for i in range(int(count) + 1)]


def alpha_label(alpha: float) -> str:
    """α as written in file names (``model_alpha<label>.pth``): ``0``, ``0.25``, ``1``."""
    return f"{alpha:g}"


def step_average(
    previous: str | os.PathLike,
    current: str | os.PathLike,
    step: int,
    alpha: float,
    *,
    mode: str = "module",
    trunk: str | os.PathLike | None = None,
) -> dict[str, Any]:
    r"""
    The checkpoint of step ``step`` (>= 1) for ``alpha``: θ = α·(step-(t-1) checkpoint
    ``previous``, ``task_modules.<step-1>`` renamed ``task_modules.<step>``) + (1-α)·(step-t
    checkpoint ``current``), key by key
    (:func:`~ykd.checkpoint.averaging.average_checkpoint_files`), on:

    - mode "module": ``task_modules.<step>`` and the mask head; grown predictors average the
      class rows both steps have; every other key is the step-t one;
    - mode "official" (the authors' script, with α = 0.25): every tensor whose key does not
      contain ``backbone.`` and that both steps have in the same shape; the others (grown class
      rows) are the step-t ones.

    ``trunk``: a checkpoint whose trunk replaces the result's (None: the step-t trunk).
    """
    if step < 1:
        raise ValueError(f"The α sweep needs a step >= 1 (a previous step), got {step}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"α must be in [0, 1], got {alpha}")
    if mode not in AVERAGING_MODES:
        raise ValueError(f"MODEL.YKD.AVERAGING.MODE must be one of {AVERAGING_MODES}, got {mode!r}")
    options = (
        OFFICIAL_OPTIONS
        if mode == "official"
        else {"include": rf"^(task_modules\.{step}|mask_head)\."}
    )
    return average_checkpoint_files(
        [previous, current],
        [alpha, 1 - alpha],
        rename={f"task_modules.{step - 1}.": f"task_modules.{step}."},
        trunk=trunk or None,
        **options,
    )


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def sweep_record(
    alphas: Sequence[float],
    evaluations: Sequence[Mapping[str, Mapping[str, float]]],
    checkpoints: Sequence[str],
    **info,
) -> dict[str, Any]:
    """
    The content of ``averaging.json``: ``info`` (e.g. scenario, method, step), one row per α with
    its checkpoint and old / new / all AP per IoU type (``segm``, ``bbox``; NaN as None), and VOC
    AP too where the evaluations have it; ``headline``, the metric that ranks the αs ("vocAP"
    where evaluated, else "AP"), and ``best_alpha`` (:func:`best_alpha`).

    Args:
        evaluations: per α, the evaluation results (``{"segm": {"all/AP": ...}, ...}``).
    """
    voc = any(e.get("segm", {}).get("all/vocAP") is not None for e in evaluations)
    headline = "vocAP" if voc else "AP"
    metrics = ("AP", "vocAP") if voc else ("AP",)
    rows = []
    for alpha, evaluation, checkpoint in zip(alphas, evaluations, checkpoints, strict=True):
        row = {"alpha": float(alpha), "checkpoint": checkpoint}
        for iou_type in _IOU_TYPES:
            values = evaluation.get(iou_type, {})
            keys = [f"{g}/{m}" for m in metrics for g in GROUPS]
            row[iou_type] = {key: _finite(values.get(key)) for key in keys}
        rows.append(row)
    return {**info, "rows": rows, "headline": headline, "best_alpha": best_alpha(rows, headline)}


def best_alpha(rows: Sequence[Mapping[str, Any]], metric: str = "AP") -> float | None:
    """
    The α of the row with the highest all-class mask ``metric`` ("AP" or "vocAP"; the first on
    ties; None if none).
    """
    best = None
    for row in rows:
        value = row["segm"].get(f"all/{metric}")
        if value is not None and (best is None or value > best[1]):
            best = (row["alpha"], value)
    return None if best is None else best[0]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def sweep_table(record: Mapping[str, Any]) -> str:
    """
    Markdown: old / new / all mask AP (the record's headline metric) and all-class box AP per α,
    the best α marked ``*``.
    """
    metric = record.get("headline", "AP")
    name = _METRIC_NAMES[metric]
    headers = ["α", *(f"mask {name} {g}" for g in GROUPS), f"box {name} all", "best"]
    rows = [
        [
            alpha_label(row["alpha"]),
            *(_fmt(row["segm"][f"{g}/{metric}"]) for g in GROUPS),
            _fmt(row["bbox"][f"all/{metric}"]),
            "*" if row["alpha"] == record["best_alpha"] else "",
        ]
        for row in record["rows"]
    ]
    title = (
        f"{record.get('scenario', '')} {record.get('method', '')}, step {record.get('step', '')}:"
        f" θ = α·θ_(t-1) + (1-α)·θ_t"
    )
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{table}\n"


def plot_sweep(record: Mapping[str, Any], path: str) -> None:
    """
    PNG: old / new / all-class mask AP (the record's headline metric) against α, the best α
    marked by a vertical line.
    """
    metric = record.get("headline", "AP")
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    alphas = [row["alpha"] for row in record["rows"]]
    for group in GROUPS:
        values = [row["segm"][f"{group}/{metric}"] for row in record["rows"]]
        axis.plot(alphas, [math.nan if v is None else v for v in values], "-o", label=group)
    best = record["best_alpha"]
    if best is not None:
        axis.axvline(best, color="gray", linestyle="--", label=f"best α = {alpha_label(best)}")
    axis.set(
        xlabel="α (weight of step t-1)",
        ylabel=f"mask {_METRIC_NAMES[metric]}",
        title=f"{record.get('scenario', '')} {record.get('method', '')}, step {record.get('step')}",
    )
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)
