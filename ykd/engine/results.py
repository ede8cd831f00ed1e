"""
Results of continual scenarios: the per-step record of a method (``results.json``), forgetting,
markdown tables and plots, and the comparison of several methods.

The headline metric of a run is the papers' VOC AP (``vocAP``, all-point, averaged over IoU
thresholds) when its evaluations have it (``CONTINUAL.EVAL_VOC_METRIC``, on in the VOC/SBD
configs), COCO's AP@[.50:.95] otherwise; tables and plots lead with it and show COCO's AP beside
it. Scenarios of more than two steps (``15-1``, ``10-5``) also show the groups the papers report
for them: the step-0 classes (``1-15``) and all classes added since (``16-20`` at the last step).
"""

import math

from matplotlib.figure import Figure
from tabulate import tabulate

from ..data import Scenario
from ..utils import atomic_write

IOU_TYPES = {"segm": "mask", "bbox": "box"}
GROUP_METRICS = ("AP", "AP50", "ECE", "vocAP", "vocAP50")
GROUPS = ("old", "new", "all")
METRIC_NAMES = {"AP": "AP", "vocAP": "VOC AP"}


def _group_metrics(evaluation: dict) -> dict:
    """The ``<group>/<metric>`` entries of one task's evaluation (e.g. "old/AP", "1-15/AP50")."""
    return {
        key: value
        for key, value in evaluation.items()
        if "/" in key and key.rsplit("/", 1)[1] in GROUP_METRICS and value is not None
    }


def forgetting(
    evals: list[dict], scenario: Scenario, class_order: list[str], step: int, metric: str = "AP"
) -> dict:
    """
    Mean over the old classes of step ``step`` of (``metric`` when the class was learned − at
    ``step``), from the per-class ``"<metric>-<class>"`` entries, per IoU type (in AP points;
    positive = forgotten). Empty at step 0.
    """
    out = {}
    if step == 0:
        return out
    for iou_type in IOU_TYPES:
        drops = []
        for learned_at in range(step):
            for c in scenario.task(learned_at):
                key = f"{metric}-{class_order[c]}"
                before = (evals[learned_at] or {}).get(iou_type, {}).get(key)
                now = (evals[step] or {}).get(iou_type, {}).get(key)
                if before is not None and now is not None:
                    drops.append(before - now)
        if drops:
            out[iou_type] = sum(drops) / len(drops)
    return out


def headline_metric(evals: list[dict | None]) -> str:
    """ "vocAP" when an evaluation has the papers' VOC AP of all classes, else "AP"."""
    has_voc = any("all/vocAP" in (e or {}).get(t, {}) for e in evals for t in IOU_TYPES)
    return "vocAP" if has_voc else "AP"


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

    Returns:
        ``dataset``, ``scenario``, ``method``, ``class_order``, ``tasks``, ``headline`` (the
        headline metric, see :func:`headline_metric`) and ``steps``: per step run, its ``step``,
        ``forgetting`` (COCO AP), ``voc_forgetting`` (VOC AP, when evaluated) and the group
        metrics of each IoU type (``"segm"``, ``"bbox"``: ``"old/AP"``, ``"1-15/vocAP"``, ...).
    """
    steps = []
    headline = headline_metric(evals)
    for step, evaluation in enumerate(evals):
        if evaluation is None:
            continue
        record = {"step": step, "forgetting": forgetting(evals, scenario, class_order, step)}
        if headline == "vocAP":
            record["voc_forgetting"] = forgetting(evals, scenario, class_order, step, "vocAP")
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
        "headline": headline,
        "steps": steps,
    }


def mask_ap_summary(evaluation: dict | None) -> str:
    """
    ``"old 22.3, new 11.2, all 19.5"``: the group mask APs of an evaluation (those present),
    followed by ``"; VOC AP old 30.1, new 15.0, all 26.3"`` when it has the papers' VOC AP.
    """
    mask = (evaluation or {}).get("segm", {})
    parts = []
    for metric, prefix in (("AP", ""), ("vocAP", "VOC AP ")):
        values = [f"{g} {mask[f'{g}/{metric}']:.1f}" for g in GROUPS if f"{g}/{metric}" in mask]
        if values:
            parts.append(prefix + ", ".join(values))
    return "; ".join(parts)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _value(record: dict, iou_type: str, key: str) -> str:
    return _fmt(record[iou_type].get(key))


def _range_name(class_ids: list[int]) -> str:
    first, last = class_ids[0] + 1, class_ids[-1] + 1
    return str(first) if first == last else f"{first}-{last}"


def paper_groups(tasks: list[list[int]], step: int) -> tuple[str, str] | None:
    """
    The groups the papers report for a scenario of more than two steps, at ``step`` >= 1: the
    step-0 classes and the classes of steps 1..``step`` (``("1-15", "16-20")`` at the last step
    of 15-1, ``("1-15", "16")`` at its step 1). None for two-step scenarios (they are old and new)
    and at step 0.
    """
    if len(tasks) <= 2 or step == 0:
        return None
    return _range_name(tasks[0]), _range_name(sum(tasks[1 : step + 1], []))


def _metric_columns(headline: str) -> list[tuple[str, str]]:
    """(IoU type, metric) of the old/new/all columns: the headline, then COCO AP beside it."""
    columns = [("segm", headline)]
    return columns + [("segm", "AP")] * (headline != "AP")


def method_table(results: dict) -> str:
    """
    Markdown: one row per step with old/new/all mask AP (the headline metric, then COCO AP when
    the headline is VOC AP), box AP, the base and incremental groups of scenarios of more than
    two steps, and the forgetting (of the headline metric).
    """
    headline = results.get("headline", "AP")
    tasks = results["tasks"]
    columns = _metric_columns(headline) + [("bbox", m) for m in dict.fromkeys((headline, "AP"))]
    headers = ["step"]
    headers += [f"{IOU_TYPES[t]} {METRIC_NAMES[m]} {g}" for t, m in columns for g in GROUPS]
    last_groups = paper_groups(tasks, len(tasks) - 1)
    if last_groups:
        base, incremental = last_groups
        first_new = incremental.split("-")[0]
        headers += [
            f"mask {METRIC_NAMES[headline]} {base}",
            f"mask {METRIC_NAMES[headline]} {first_new}-t",
        ]
    headers += ["mask forgetting"]
    forgetting_key = "voc_forgetting" if headline == "vocAP" else "forgetting"
    rows = []
    for record in results["steps"]:
        row = [record["step"]]
        row += [_value(record, t, f"{g}/{m}") for t, m in columns for g in GROUPS]
        if last_groups:
            groups = paper_groups(tasks, record["step"]) or ()
            row += [_value(record, "segm", f"{g}/{headline}") for g in groups] or ["-", "-"]
        row.append(_fmt(record.get(forgetting_key, {}).get("segm")))
        rows.append(row)
    title = f"{results['dataset']} {results['scenario']}, {results['method']}"
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{table}\n"


def compare_methods(all_results: list[dict], reference: str = "joint") -> str:
    """
    Markdown: one row per method at the last step: old/new/all mask AP (the headline metric),
    all-class COCO mask AP beside it when the headline is VOC AP, all-class box AP, the base and
    incremental groups of scenarios of more than two steps, the forgetting, and the ratio of the
    all-class mask AP to that of ``reference`` (when it is among the methods).
    """
    first = all_results[0]
    headline = first.get("headline", "AP")
    name = METRIC_NAMES[headline]
    last = {r["method"]: r["steps"][-1] for r in all_results}
    reference_ap = last.get(reference, {}).get("segm", {}).get(f"all/{headline}")
    headers = ["method"] + [f"mask {name} {g}" for g in GROUPS]
    headers += ["mask AP all"] * (headline != "AP") + [f"box {name} all"]
    groups = paper_groups(first["tasks"], len(first["tasks"]) - 1) or ()
    headers += [f"mask {name} {g}" for g in groups]
    headers += ["mask forgetting", f"all / {reference}"]
    forgetting_key = "voc_forgetting" if headline == "vocAP" else "forgetting"
    rows = []
    for method, record in last.items():
        row = [method] + [_value(record, "segm", f"{g}/{headline}") for g in GROUPS]
        row += [_value(record, "segm", "all/AP")] * (headline != "AP")
        row += [_value(record, "bbox", f"all/{headline}")]
        row += [_value(record, "segm", f"{g}/{headline}") for g in groups]
        row.append(_fmt(record.get(forgetting_key, {}).get("segm")))
        all_ap = record["segm"].get(f"all/{headline}")
        ratio = all_ap / reference_ap if reference_ap and all_ap is not None else None
        row.append(_fmt(ratio, 2))
        rows.append(row)
    title = f"{first['dataset']} {first['scenario']}, last step ({len(first['tasks'])} steps)"
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{table}\n"


def _save(figure: Figure, path: str) -> None:
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)


def plot_method(results: dict, path: str) -> None:
    """
    PNG: mask AP (the headline metric) of the old, new and all classes and of each task group,
    against the step.
    """
    headline = results.get("headline", "AP")
    suffix = f"/{headline}"
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    steps = [r["step"] for r in results["steps"]]
    groups = dict.fromkeys(
        key[: -len(suffix)] for r in results["steps"] for key in r["segm"] if key.endswith(suffix)
    )
    for group in groups:
        values = [r["segm"].get(f"{group}{suffix}", math.nan) for r in results["steps"]]
        style = "-o" if group in GROUPS else ":."
        axis.plot(steps, values, style, label=group)
    title = f"{results['scenario']}, {results['method']}"
    axis.set(xlabel="step", ylabel=f"mask {METRIC_NAMES[headline]}", title=title)
    axis.set_xticks(steps)
    axis.legend(fontsize="small", ncol=2)
    axis.grid(alpha=0.3)
    _save(figure, path)


def plot_comparison(all_results: list[dict], path: str) -> None:
    """PNG: old / new / all-class mask AP (the headline metric) against the step, per method."""
    headline = all_results[0].get("headline", "AP")
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, 3, sharey=True)
    for axis, group in zip(axes, GROUPS, strict=True):
        for results in all_results:
            steps = [r["step"] for r in results["steps"]]
            values = [r["segm"].get(f"{group}/{headline}", math.nan) for r in results["steps"]]
            axis.plot(steps, values, "-o", label=results["method"])
        axis.set(xlabel="step", title=f"{group} classes")
        axis.set_xticks(sorted({r["step"] for results in all_results for r in results["steps"]}))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"mask {METRIC_NAMES[headline]}")
    axes[-1].legend(fontsize="small")
    figure.suptitle(f"{all_results[0]['dataset']} {all_results[0]['scenario']}")
    _save(figure, path)
