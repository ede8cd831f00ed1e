"""
The benchmark's per-scenario results over seeds: mean ± sample std of each method's last-step
metrics, as ``bench/results/synthetic_<scenario>[_order<k>].{json,md,png}``.
"""

import hashlib
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence

from matplotlib.figure import Figure
from tabulate import tabulate

from ykd.engine.scenario import load_method_results
from ykd.utils import atomic_write, write_json_atomic, write_text_atomic

# (column, IoU type, key) of the last step's record.
METRICS = (
    ("mask AP old", "segm", "old/AP"),
    ("mask AP new", "segm", "new/AP"),
    ("mask AP all", "segm", "all/AP"),
    ("box AP all", "bbox", "all/AP"),
)


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "n", "values"}``; std is the sample std (None for one value)."""
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def fmt(stats: dict | None, digits: int = 1) -> str:
    if not stats:
        return "-"
    text = f"{stats['mean']:.{digits}f}"
    return text + (f" ± {stats['std']:.{digits}f}" if stats["std"] is not None else "")


def aggregate(results: list[dict]) -> dict[str, dict]:
    """Per method: the mean ± std over its runs (seeds) of METRICS, forgetting and all / joint."""
    runs: dict[str, list[dict]] = {}
    for record in results:
        if record["steps"] and record["steps"][-1]["step"] == len(record["tasks"]) - 1:
            runs.setdefault(record["method"], []).append(record)  # runs of the whole scenario
    joint = runs.get("joint")
    joint_all = joint[0]["steps"][-1]["segm"].get("all/AP") if joint else None
    table = {}
    for method, records in sorted(runs.items()):
        last = [r["steps"][-1] for r in records]
        row = {"seeds": sorted(r.get("incremental_seed", -1) for r in records)}
        for column, iou_type, key in METRICS:
            values = [s[iou_type][key] for s in last if s[iou_type].get(key) is not None]
            row[column] = mean_std(values) if values else None
        forgetting = [s["forgetting"]["segm"] for s in last if "segm" in s["forgetting"]]
        row["mask forgetting"] = mean_std(forgetting) if forgetting else None
        if joint_all and row["mask AP all"]:
            row["all / joint"] = mean_std([v / joint_all for v in row["mask AP all"]["values"]])
        table[method] = row
    return table


def markdown(table: dict[str, dict], title: str) -> str:
    headers = ["method", "runs"] + [m[0] for m in METRICS] + ["mask forgetting", "all / joint"]
    rows = []
    for method, row in table.items():
        cells = [method, str(len(row["seeds"]))]
        cells += [fmt(row.get(column)) for column in headers[2:-1]]
        cells.append(fmt(row.get("all / joint"), 3))
        rows.append(cells)
    text = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    return f"### {title}\n\n{text}\n"


def plot(table: dict[str, dict], title: str, path: str) -> None:
    """PNG: old / new / all mask AP per method, bars with ± std error bars."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    axis = figure.subplots()
    width = 0.27
    for offset, column in enumerate(m[0] for m in METRICS[:3]):
        stats = [table[m].get(column) or {"mean": 0.0, "std": None} for m in table]
        axis.bar(
            [i + (offset - 1) * width for i in range(len(table))],
            [s["mean"] for s in stats],
            width,
            yerr=[s["std"] or 0.0 for s in stats],
            label=column.replace("mask AP ", ""),
            capsize=2,
        )
    axis.set_xticks(range(len(table)), list(table), rotation=30, ha="right")
    axis.set(ylabel="mask AP (mean ± std over seeds)", title=title)
    axis.legend()
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)


def commit() -> str:
    """The checked-out commit of the benchmark's code ("unknown" outside a git tree)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def environment() -> dict:
    """
    What a figure depends on beyond the commit: the CPU and the numeric libraries (the same
    commit trains to different weights where their kernels differ, docs/benchmark.md).
    """
    import cv2
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
    }


def file_digest(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the file at ``path``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def write_results(stem: str, markdown_text: str, command: str, payload: dict) -> None:
    """
    ``<stem>.json`` (``payload`` with the command, the commit and the environment) and
    ``<stem>.md`` (``markdown_text`` and the command line, commit and environment that made it).
    """
    revision = commit()
    env = environment()
    write_json_atomic(
        stem + ".json", {"command": command, "commit": revision, "environment": env, **payload}
    )
    where = f"{env['cpu']}, {env['cores']} cores, torch {env['torch']}, numpy {env['numpy']}"
    text = f"{markdown_text}\nCommand: `{command}` (commit {revision}; {where})\n"
    write_text_atomic(stem + ".md", text)


def step0_mask_ap(results: list[dict]) -> list[float]:
    """The distinct step-0 all-class mask APs of ``results`` (one when they share their step 0)."""
    steps = [r["steps"][0] for r in results if r["steps"] and r["steps"][0]["step"] == 0]
    return sorted({s["segm"]["all/AP"] for s in steps if s["segm"].get("all/AP") is not None})


def write_scenario_results(
    scenario: str, root: str, order: int, args, methods: Sequence[str], data: dict | None = None
) -> dict:
    """
    Aggregate the runs of ``methods`` under ``<root>/synthetic/<scenario>`` into the results
    files (other runs there, e.g. bench/ablations.py's variants, are left out), with the step-0
    mask AP they share and ``data`` (the digests of the dataset's annotation files).
    """
    results = load_method_results([os.path.join(root, "synthetic", scenario)])
    results = [r for r in results if r["method"] in methods]
    table = aggregate(results)
    suffix = f"_order{order}" if order else ""
    stem = os.path.join(args.results_dir, f"synthetic_{scenario}{suffix}")
    command = (
        f"python bench/scenarios.py --scenarios {scenario} --seeds {args.seeds}"
        f" --class-orders {args.class_orders} --jobs {args.jobs}"
    )
    if args.output_root != "output/bench":
        command += f" --output-root {args.output_root}"
    if args.opts:
        command += " " + " ".join(f'"{o}"' if " " in o else o for o in args.opts)
    order_name = "dataset order" if order == 0 else f"class order {order}"
    title = f"synthetic {scenario} ({order_name}), last step: mean ± std over seeds"
    text = markdown(table, title)
    step0 = step0_mask_ap(results)
    text += "\nStep-0 mask AP: " + (", ".join(f"{v:.2f}" for v in step0) or "-")
    if data:
        text += "; data: " + ", ".join(f"{name} {digest}" for name, digest in data.items())
    payload = {"scenario": scenario, "order": order, "step0 mask AP": step0, "data": data or {}}
    write_results(stem, text + "\n", command, {**payload, "methods": table})
    plot(table, f"synthetic {scenario}", stem + ".png")
    print(text, flush=True)
    return table
