#!/usr/bin/env python
"""
The end-to-end demo behind `make demo`: generate the synthetic dataset (first run only), run the
whole synthetic 15-5 scenario on CPU for fine-tuning and Dynamic Y-KD (step 0 is trained once and
shared), evaluate every step, and print the comparison table.

    python tools/demo.py [--output-root output/demo] [--methods ft dynamic_ykd] [opts ...]
"""

import argparse
import os
import subprocess
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
TRAIN_NET = os.path.join(TOOLS, "train_net.py")
CONFIGS = os.path.join(TOOLS, "..", "configs", "synthetic")


def run_demo(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default="output/demo")
    parser.add_argument("--scenario", default="15-5")
    parser.add_argument("--methods", nargs="+", default=["ft", "dynamic_ykd"])
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)

    start = time.perf_counter()
    for method in args.methods:
        # One process per method: each sets up its own Detectron2 logging.
        subprocess.run(
            [sys.executable, TRAIN_NET, "--config-file", os.path.join(CONFIGS, f"{method}.yaml")]
            + ["--scenario", args.scenario, "--all-steps"]
            + ["CONTINUAL.OUTPUT_ROOT", args.output_root]
            + args.opts,
            check=True,
        )
    # Each method's run refreshed the scenario's comparison of every method in its folder.
    folder = os.path.join(args.output_root, "synthetic", args.scenario)
    minutes = (time.perf_counter() - start) / 60
    with open(os.path.join(folder, "results.md")) as f:
        table = f.read()
    print(f"\nSynthetic {args.scenario}: {', '.join(args.methods)} in {minutes:.1f} min\n\n{table}")
    print(f"Results, checkpoints and plots: {folder}")
    return table


if __name__ == "__main__":
    run_demo()
