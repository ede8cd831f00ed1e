#!/usr/bin/env python
"""
Dynamic Y-KD's open inference choices, decided on a development split: the last step of each
finished benchmark run of ``dynamic_ykd`` evaluated with every combination of
``MODEL.YKD.INFERENCE.RPN`` (per_task / latest) and ``MODEL.YKD.INFERENCE.SCORES`` (slice /
renormalise), on validation images generated with another seed (the development split), then
on the benchmark's test images; the choice is made on the first, the second is reported once.

    python bench/inference_ablation.py [--scenarios 15-5 19-1] [--seeds 3]
        [--output-root output/bench]

Writes ``bench/results/inference_ablation.{json,md}``.
"""

import argparse
import itertools
import os
import sys

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.seed_tables import fmt, mean_std, write_results  # noqa: E402
from ykd.data import parse_scenario  # noqa: E402
from ykd.engine.decomposition import evaluate_variant  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "synthetic", "dynamic_ykd.yaml")
CHOICES = {"MODEL.YKD.INFERENCE.RPN": ("per_task", "latest")}
CHOICES["MODEL.YKD.INFERENCE.SCORES"] = ("slice", "renormalise")
# Validation images of another generator seed (a few training images: they are not used).
DEV_SPLIT = ["SYNTHETIC.ROOT", "datasets/synthetic_dev", "SYNTHETIC.SEED", "1"]
DEV_SPLIT += ["SYNTHETIC.NUM_TRAIN", "16"]
GROUPS = ("old", "new", "all")


def variants() -> dict[str, list[str]]:
    """Variant name -> its opts, every combination of CHOICES (the first is the default)."""
    out = {}
    for values in itertools.product(*CHOICES.values()):
        opts = [item for pair in zip(CHOICES, values, strict=True) for item in pair]
        out[" / ".join(values)] = opts
    return out


def evaluate(scenario: str, seed: int, args) -> dict[str, dict[str, dict]]:
    """Per split and variant: the last step's mask AP of the groups for one seed's run."""
    last = parse_scenario(scenario, 20).num_steps - 1
    opts = ["CONTINUAL.OUTPUT_ROOT", args.output_root, "CONTINUAL.VIS_NUM_IMAGES", "0"]
    opts += ["CONTINUAL.INCREMENTAL_SEED", str(seed)]
    out = {"dev": {}, "test": {}}
    for name, variant in variants().items():
        folder = name.replace(" / ", "_")
        for split, extra in (("dev", DEV_SPLIT), ("test", [])):
            evaluation = evaluate_variant(
                CONFIG, opts, scenario, last, variant + extra, f"ablation_{split}_{folder}"
            )
            out[split][name] = {g: evaluation["segm"].get(f"{g}/AP") for g in GROUPS}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["15-5", "19-1"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    table, rows = {}, []
    for scenario in args.scenarios:
        runs = [evaluate(scenario, seed, args) for seed in range(args.seeds)]
        table[scenario] = {
            split: {
                name: {g: mean_std([r[split][name][g] for r in runs]) for g in GROUPS}
                for name in variants()
            }
            for split in ("dev", "test")
        }
        dev = table[scenario]["dev"]
        chosen = max(dev, key=lambda name: dev[name]["all"]["mean"])
        table[scenario]["chosen on dev"] = chosen
        for name in variants():
            cells = [fmt(dev[name][g]) for g in GROUPS]
            cells += [fmt(table[scenario]["test"][name][g]) for g in GROUPS]
            rows.append([scenario, name + (" (chosen)" if name == chosen else "")] + cells)
    headers = ["scenario", "RPN / scores"] + [f"dev {g}" for g in GROUPS]
    headers += [f"test {g}" for g in GROUPS]
    text = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    command = f"python bench/inference_ablation.py --scenarios {' '.join(args.scenarios)}"
    command += f" --seeds {args.seeds}"
    stem = os.path.join(args.results_dir, "inference_ablation")
    title = "### Dynamic Y-KD inference choices: last-step mask AP, mean ± std over seeds\n\n"
    write_results(stem, title + text + "\n", command, {"table": table})
    print(text)
    return table


if __name__ == "__main__":
    main()
