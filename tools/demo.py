#!/usr/bin/env python
"""
The end-to-end demo behind `make demo`: generate the synthetic dataset (first run only), train step 0
of the synthetic 15-5 scenario on CPU, evaluate it, and print the old/new/all table.

    python tools/demo.py [--output-root output/demo] [opts ...]
"""

import argparse
import os
import time

from train_net import build_parser, main

from ykd.evaluation import summary_table

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "synthetic", "ft.yaml")


def run_demo(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default="output/demo")
    parser.add_argument("--scenario", default="15-5")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)

    start = time.perf_counter()
    train_args = build_parser().parse_args(
        ["--config-file", CONFIG, "--scenario", args.scenario, "--step", "0"]
        + ["CONTINUAL.OUTPUT_ROOT", args.output_root]
        + args.opts
    )
    results = main(train_args)
    minutes = (time.perf_counter() - start) / 60
    groups = [key[: -len("/AP")] for key in results["segm"] if key.endswith("/AP")]
    print(
        f"\nSynthetic {args.scenario}, step 0 (fine-tuning), trained and evaluated in {minutes:.1f} min:"
    )
    print(summary_table(results, groups))
    print(f"Outputs: {os.path.join(args.output_root, 'synthetic', args.scenario, 'ft', 'step0')}")
    return results


if __name__ == "__main__":
    run_demo()
