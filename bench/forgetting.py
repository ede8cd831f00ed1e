#!/usr/bin/env python
"""
Where Dynamic Y-KD loses old-class AP on the benchmark (ykd/engine/decomposition.py): per step
and old task, trunk drift (module k alone on the trunk of step k vs of step t) and merge
interference (module k alone vs the merged model), mean ± std over the seeds of the benchmark's
``dynamic_ykd`` runs; ``bench/results/forgetting_<scenario>.{json,md,png}``.

    python bench/forgetting.py [--scenarios 19-1 15-1] [--seeds 3] [--output-root output/bench]
"""

import argparse
import os
import sys

from matplotlib.figure import Figure
from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.seed_tables import fmt, mean_std, write_results  # noqa: E402
from ykd.engine.decomposition import decompose_forgetting  # noqa: E402
from ykd.utils import atomic_write  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "synthetic", "dynamic_ykd.yaml")
FIELDS = ("learned", "alone_then", "alone_now", "merged_now", "trunk_drift", "merge_interference")


def aggregate(runs: list[dict]) -> list[dict]:
    """Per (step, task): mean ± std over the runs of every field."""
    rows = []
    for index, step in enumerate(runs[0]["steps"]):
        for position, task in enumerate(step["tasks"]):
            records = [run["steps"][index]["tasks"][position] for run in runs]
            row = {"step": step["step"], "task": task["task"], "group": task["group"]}
            row.update({f: mean_std([r[f] for r in records]) for f in FIELDS})
            rows.append(row)
    return rows


def plot(rows: list[dict], title: str, path: str) -> None:
    """PNG: per step, the AP of task 0 learned, alone on the step's trunk, and merged."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    first = [r for r in rows if r["task"] == 0]
    steps = [r["step"] for r in first]
    for field, label in (
        ("alone_then", "module 0 on the step-0 trunk"),
        ("alone_now", "module 0 alone on the step-t trunk"),
        ("merged_now", "merged model, task-0 classes"),
    ):
        axis.errorbar(
            steps,
            [r[field]["mean"] for r in first],
            yerr=[r[field]["std"] or 0.0 for r in first],
            marker="o",
            capsize=3,
            label=label,
        )
    axis.set(xlabel="step t", ylabel="mask AP of the task-0 classes", title=title)
    axis.set_xticks(steps)
    axis.legend()
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["19-1", "15-1"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    out = {}
    for scenario in args.scenarios:
        runs = []
        for seed in range(args.seeds):
            opts = ["CONTINUAL.OUTPUT_ROOT", args.output_root, "CONTINUAL.VIS_NUM_IMAGES", "0"]
            opts += ["CONTINUAL.INCREMENTAL_SEED", str(seed)]
            runs.append(decompose_forgetting(CONFIG, opts, scenario))
        rows = aggregate(runs)
        out[scenario] = rows
        headers = ["step", "task (classes)", "learned", "alone, its step", "alone, step t"]
        headers += ["merged, step t", "trunk drift", "merge interference"]
        table = [
            [r["step"], f"{r['task']} ({r['group']})"] + [fmt(r[f]) for f in FIELDS] for r in rows
        ]
        text = tabulate(table, headers=headers, tablefmt="pipe", disable_numparse=True)
        command = f"python bench/forgetting.py --scenarios {scenario} --seeds {args.seeds}"
        stem = os.path.join(args.results_dir, f"forgetting_{scenario}")
        title = f"### Dynamic Y-KD, synthetic {scenario}: mask AP of each old task, mean ± std\n\n"
        write_results(stem, title + text + "\n", command, {"scenario": scenario, "rows": rows})
        plot(rows, f"Dynamic Y-KD, synthetic {scenario}", stem + ".png")
        print(title + text, flush=True)
    return out


if __name__ == "__main__":
    main()
