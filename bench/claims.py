"""
The paper's three claims on the synthetic benchmark, from ``bench/results/synthetic_*.json``:
each a difference or ratio of mean ± std over seeds, with its verdict.

    python bench/claims.py [--results-dir bench/results]

A difference counts only when it exceeds its spread (the two methods' stds added in quadrature);
a method run with one seed gets the largest std of the scenario's seeded methods.
"""

import argparse
import json
import math
import os

from tabulate import tabulate

from ykd.utils import write_text_atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = ("ilod", "faster_ilod", "mma", "mma_plus", "ykd")


def _stats(table: dict, method: str, column: str) -> tuple[float, float]:
    entry = table[method][column]
    if entry["std"] is not None:
        return entry["mean"], entry["std"]
    seeded = [row[column]["std"] for row in table.values() if row[column] and row[column]["std"]]
    return entry["mean"], max(seeded, default=0.0)


def verdict(value: float, spread: float, paper: float, *, ratio: bool = False) -> str:
    """Whether the measured ``value`` ± ``spread`` agrees in direction with the paper's claim."""
    if ratio:
        return f"{'holds' if value - spread >= 0.85 else 'not shown'} (paper {paper:.3f})"
    if abs(value) <= spread:
        return f"not distinguishable (paper {paper:+.1f})"
    same_sign = (value > 0) == (paper > 0)
    return f"{'holds' if same_sign else 'contradicted'} (paper {paper:+.1f})"


def claims(tables: dict[str, dict]) -> list[list[str]]:
    rows = []
    if "15-5" in tables and "joint" in tables["15-5"]:
        entry = tables["15-5"]["dynamic_ykd"]["all / joint"]
        spread = entry["std"] or 0.0
        rows.append(
            ["15-5 Dynamic Y-KD all-class AP / joint", f"{entry['mean']:.3f} ± {spread:.3f}"]
            + [verdict(entry["mean"], spread, 0.915, ratio=True)]
        )
    if "15-1" in tables and any(m in tables["15-1"] for m in BASELINES):
        table = tables["15-1"]
        column = "mask AP old"
        best = max((m for m in BASELINES if m in table), key=lambda m: table[m][column]["mean"])
        ours, ours_std = _stats(table, "dynamic_ykd", column)
        theirs, their_std = _stats(table, best, column)
        spread = math.hypot(ours_std, their_std)
        rows.append(
            [f"15-1 old-class AP: Dynamic Y-KD − best baseline ({best})"]
            + [f"{ours - theirs:+.1f} ± {spread:.1f}", verdict(ours - theirs, spread, 2.1)]
        )
    if "19-1" in tables and "mma" in tables["19-1"]:
        table = tables["19-1"]
        ours, ours_std = _stats(table, "dynamic_ykd", "mask AP new")
        theirs, their_std = _stats(table, "mma", "mask AP new")
        spread = math.hypot(ours_std, their_std)
        rows.append(
            ["19-1 new-class AP: Dynamic Y-KD − MMA"]
            + [f"{ours - theirs:+.1f} ± {spread:.1f}", verdict(ours - theirs, spread, 7.6)]
        )
    return rows


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    tables = {}
    for scenario in ("15-5", "15-1", "19-1"):
        path = os.path.join(args.results_dir, f"synthetic_{scenario}.json")
        if os.path.exists(path):
            with open(path) as f:
                methods = json.load(f)["methods"]
            if isinstance(methods, dict) and "dynamic_ykd" in methods:  # a table over seeds
                tables[scenario] = methods
    text = tabulate(
        claims(tables), headers=["claim", "measured (mean ± spread)", "verdict"], tablefmt="pipe"
    )
    write_text_atomic(
        os.path.join(args.results_dir, "claims.md"),
        "### The paper's claims on the synthetic benchmark\n\n" + text
        + "\n\nCommand: `python bench/claims.py`\n",
    )  # fmt: skip
    print(text)
    return text


if __name__ == "__main__":
    main()
