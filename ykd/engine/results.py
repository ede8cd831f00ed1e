"""
Results of continual scenarios: the per-step record of a method (``results.json``), forgetting,
markdown tables and plots, and the comparison of several methods (DESIGN.md §6, §8).
"""

import math

from matplotlib.figure import Figure
from tabulate import tabulate

from ..data import Scenario
from ..utils import atomic_write

IOU_TYPES = {"segm": "mask", "bbox": "box"}
GROUP_METRICS = ("AP", "AP50", "ECE", "vocAP", "vocAP50")


def _group_metrics(evaluation: dict) -> dict:
    """The ``<group>/<metric>`` entries of one task's evaluation (e.g. "old/AP", "1-15/AP50")."""
    return {
        key: value
        for key, value in evaluation.items()
        if "/" in key and key.rsplit("/", 1)[1] in GROUP_METRICS and value is not None
    }


def forgetting(evals: list[dict], scenario: Scenario, class_order: list[str], step: int) -> dict:
    """
    Mean over the old classes of step ``step`` of (AP when the class was learned − AP at ``step``),
    per IoU type (in AP points; positive = forgotten). Empty at step 0.
    """
    out = {}
    if step == 0:
        return out
    for iou_type in IOU_TYPES:
        drops = []
        for learned_at in range(step):
            for c in scenario.task(learned_at):
                key = f"AP-{class_order[c]}"
                before = (evals[learned_at] or {}).get(iou_type, {}).get(key)
                now = (evals[step] or {}).get(iou_type, {}).get(key)
                if before is not None and now is not None:
                    drops.append(before - now)
        if drops:
            out[iou_type] = sum(drops) / len(drops)
    return out


def method_results(
    evals: list[dict | None],
    *,
    dataset: str,
    scenario: Scenario,
    method: str,
    class_order: list[str],
    averaged: list[dict | None] | None = None,
) -> dict:
    """
    The record of one method's scenario run (the content of ``results.json``).

    Args:
        evals: the evaluation results (``eval.json``) of steps 0..T-1; None for a step that has
            not been run (e.g. the earlier steps of joint training, often run at the last step only),
            which gets no record.
        averaged: per step, the evaluation of its averaged model (``MODEL.YKD.AVERAGING``) or None;
            a step that has one gets its group metrics under ``"averaged"``.
    """
    steps = []
    for step, evaluation in enumerate(evals):
        if evaluation is None:
            continue
        record = {"step": step, "forgetting": forgetting(evals, scenario, class_order, step)}
        for iou_type in IOU_TYPES:
            record[iou_type] = _group_metrics(evaluation.get(iou_type, {}))
        if averaged and averaged[step]:
            record["averaged"] = {t: _group_metrics(averaged[step].get(t, {})) for t in IOU_TYPES}
        steps.append(record)
    return {
        "dataset": dataset,
        "scenario": scenario.name,
        "method": method,
        "class_order": list(class_order),
        "tasks": scenario.tasks(),
        "steps": steps,
    }


def mask_ap_summary(evaluation: dict | None) -> str:
    """``"old 22.3, new 11.2, all 19.5"``: the group mask APs of an evaluation (those present)."""
    mask = (evaluation or {}).get("segm", {})
    return ", ".join(
        f"{g} {mask[f'{g}/AP']:.1f}" for g in ("old", "new", "all") if f"{g}/AP" in mask
    )


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _value(record: dict, iou_type: str, key: str) -> str:
    return _fmt(record[iou_type].get(key))


def method_table(results: dict) -> str:
    """Markdown: one row per step with old/new/all mask and box AP and the forgetting."""
    headers = ["step"]
    headers += [f"{IOU_TYPES[t]} AP {g}" for t in IOU_TYPES for g in ("old", "new", "all")]
    headers += ["mask forgetting"]
    rows = []
    for record in results["steps"]:
        row = [record["step"]]
        row += [_value(record, t, f"{g}/AP") for t in IOU_TYPES for g in ("old", "new", "all")]
        row.append(_fmt(record["forgetting"].get("segm")))
        rows.append(row)
    title = f"{results['dataset']} {results['scenario']}, {results['method']}"
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{table}\n"


def compare_methods(all_results: list[dict], reference: str = "joint") -> str:
    """
    Markdown: one row per method with old/new/all mask AP at the last step, box AP (all), and the
    ratio of all-class mask AP to that of ``reference`` (when it is among the methods).
    """
    last = {r["method"]: r["steps"][-1] for r in all_results}
    reference_ap = last.get(reference, {}).get("segm", {}).get("all/AP")
    headers = ["method", "mask AP old", "mask AP new", "mask AP all", "box AP all"]
    headers += ["mask forgetting", f"all / {reference}"]
    rows = []
    for method, record in last.items():
        row = [method] + [_value(record, "segm", f"{g}/AP") for g in ("old", "new", "all")]
        row += [_value(record, "bbox", "all/AP"), _fmt(record["forgetting"].get("segm"))]
        all_ap = record["segm"].get("all/AP")
        ratio = all_ap / reference_ap if reference_ap and all_ap is not None else None
        row.append(_fmt(ratio, 2))
        rows.append(row)
    first = all_results[0]
    title = f"{first['dataset']} {first['scenario']}, last step ({len(first['tasks'])} steps)"
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{table}\n"


def _save(figure: Figure, path: str) -> None:
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)


def plot_method(results: dict, path: str) -> None:
    """PNG: mask AP of the old, new and all classes and of each task group, against the step."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    steps = [r["step"] for r in results["steps"]]
    groups = dict.fromkeys(
        key[: -len("/AP")] for r in results["steps"] for key in r["segm"] if key.endswith("/AP")
    )
    for group in groups:
        values = [r["segm"].get(f"{group}/AP", math.nan) for r in results["steps"]]
        style = "-o" if group in ("old", "new", "all") else ":."
        axis.plot(steps, values, style, label=group)
    axis.set(xlabel="step", ylabel="mask AP", title=f"{results['scenario']}, {results['method']}")
    axis.set_xticks(steps)
    axis.legend(fontsize="small", ncol=2)
    axis.grid(alpha=0.3)
    _save(figure, path)


def plot_comparison(all_results: list[dict], path: str) -> None:
    """PNG: old / new / all-class mask AP against the step, one line per method."""
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, 3, sharey=True)
    for axis, group in zip(axes, ("old", "new", "all"), strict=True):
        for results in all_results:
            steps = [r["step"] for r in results["steps"]]
            values = [r["segm"].get(f"{group}/AP", math.nan) for r in results["steps"]]
            axis.plot(steps, values, "-o", label=results["method"])
        axis.set(xlabel="step", title=f"{group} classes")
        axis.set_xticks(sorted({r["step"] for results in all_results for r in results["steps"]}))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("mask AP")
    axes[-1].legend(fontsize="small")
    figure.suptitle(f"{all_results[0]['dataset']} {all_results[0]['scenario']}")
    _save(figure, path)
