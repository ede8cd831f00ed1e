#!/usr/bin/env python
"""
Compare the methods of one or more scenario outputs: one table row per method (old/new/all AP at the
last step, forgetting, ratio to joint training) and a plot of AP per step.

    python tools/compare.py output/synthetic/15-5 [output/other_root/synthetic/15-5/ykd ...] \
        --output output/synthetic/15-5
"""

import argparse

from ykd.engine.cli import UsageError, run_cli
from ykd.engine.scenario import load_method_results, write_comparison
from ykd.utils.warnings import filter_upstream_warnings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="scenario folders or method folders")
    parser.add_argument("--output", required=True, help="folder of results.md and plots/")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    results = load_method_results(args.folders)
    scenarios = {(r["dataset"], r["scenario"]) for r in results}
    if len(scenarios) > 1:
        raise UsageError(
            f"Results of different scenarios {sorted(scenarios)}: compare one scenario at a time."
        )
    write_comparison(results, args.output)
    with open(f"{args.output}/results.md") as f:
        print(f.read())


def cli(argv=None):
    """:func:`main` as a command: a user error prints its message and exits with status 2."""
    filter_upstream_warnings()
    return run_cli(lambda: main(argv), debug=build_parser().parse_args(argv).debug)


if __name__ == "__main__":
    cli()
