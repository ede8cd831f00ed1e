#!/usr/bin/env python
"""
The synthetic continual benchmark behind `make bench-scenarios`: every method on the synthetic
scenarios with the CPU benchmark schedule, then, per scenario, the comparison table, the plot and
the wall time of each method, committed as ``bench/results/synthetic_<scenario>.{json,md,png}``.

    python bench/scenarios.py [--scenarios 15-5 19-1 15-1 10-10] [--methods ft ...] [--jobs 2]

Schedule: step 0 (trained once per scenario, shared by the methods) is the demo's 450 iterations;
incremental steps are 150 iterations for multi-class steps and 50 for one-class steps (A-1
scenarios), the ratio of MMA's VOC schedules (10K vs 2.5K). Joint training is run at the last step
only, with the step-0 schedule, as the reference of the ``all / joint`` ratio. A rerun skips
finished steps.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

from demo import DEMO_SCHEDULE  # noqa: E402

from ykd.data import parse_scenario  # noqa: E402
from ykd.engine.results import compare_methods  # noqa: E402
from ykd.engine.scenario import load_method_results  # noqa: E402
from ykd.utils import write_json_atomic, write_text_atomic  # noqa: E402

METHODS = ["ft", "joint", "ilod", "faster_ilod", "mma", "mma_plus", "ykd", "dynamic_ykd"]
SCENARIOS = ["15-5", "19-1", "15-1", "10-10"]
NUM_CLASSES = 20
ONE_CLASS_STEP_OPTS = (
    "['SOLVER.MAX_ITER', '50', 'SOLVER.BASE_LR', '0.004', 'SOLVER.STEPS', '()',"
    " 'SOLVER.WARMUP_ITERS', '10', 'SOLVER.CHECKPOINT_PERIOD', '25']"
)


def schedule(scenario: str, method: str) -> list[str]:
    """The opts of the benchmark schedule of ``scenario`` (see the module docstring); joint
    training keeps the step-0 schedule at every step."""
    opts = list(DEMO_SCHEDULE)
    index = opts.index("CONTINUAL.INCREMENTAL_OPTS")
    if method == "joint":
        del opts[index : index + 2]
    elif len(parse_scenario(scenario, NUM_CLASSES).tasks()[-1]) == 1:
        opts[index + 1] = ONE_CLASS_STEP_OPTS
    return opts


def method_command(method: str, scenario: str, output_root: str, opts: list[str]) -> list[str]:
    """The train_net command of one method on one scenario (joint: its last step only)."""
    steps = ["--all-steps"]
    if method == "joint":
        steps = ["--step", str(parse_scenario(scenario, NUM_CLASSES).num_steps - 1)]
    config = os.path.join(REPO, "configs", "synthetic", f"{method}.yaml")
    return (
        [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config]
        + ["--scenario", scenario]
        + steps
        + ["CONTINUAL.OUTPUT_ROOT", output_root]
        + schedule(scenario, method)
        + opts
    )


def run_method(method: str, scenario: str, args, threads: int) -> float:
    """Run one method (its log in the scenario folder); return its wall time in seconds."""
    folder = os.path.join(args.output_root, "synthetic", scenario)
    os.makedirs(folder, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(os.path.join(folder, f"bench_{method}.log"), "a") as log:
        subprocess.run(
            method_command(method, scenario, args.output_root, args.opts),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    seconds = time.perf_counter() - start
    print(f"  {scenario} {method}: {seconds / 60:.1f} min", flush=True)
    return seconds


def run_scenario(scenario: str, args) -> dict:
    """All methods of one scenario: the first alone (it trains the shared step 0), then the rest."""
    methods = [m for m in args.methods if m != "joint"] + (
        ["joint"] if "joint" in args.methods else []
    )
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    minutes = {methods[0]: run_method(methods[0], scenario, args, os.cpu_count() or 1) / 60}
    with ThreadPoolExecutor(args.jobs) as pool:
        times = pool.map(lambda m: run_method(m, scenario, args, threads), methods[1:])
        minutes.update({m: t / 60 for m, t in zip(methods[1:], times, strict=True)})
    return minutes


def write_results(scenario: str, minutes: dict, args) -> None:
    """``bench/results/synthetic_<scenario>.{json,md,png}`` from the scenario's results.json files."""
    folder = os.path.join(args.output_root, "synthetic", scenario)
    results = [r for r in load_method_results([folder]) if r["method"] in args.methods]
    stem = os.path.join(args.results_dir, f"synthetic_{scenario}")
    command = "python bench/scenarios.py --scenarios " + scenario
    write_json_atomic(
        stem + ".json",
        {
            "command": command,
            "schedule": schedule(scenario),
            "minutes": minutes,
            "methods": results,
        },
    )
    timing = ", ".join(f"{m} {t:.1f}" for m, t in minutes.items())
    text = compare_methods(results) + f"\nWall time (min, jobs={args.jobs}): {timing}\n"
    write_text_atomic(stem + ".md", text + f"\nCommand: `{command}`\n")
    shutil.copyfile(os.path.join(folder, "plots", "methods.png"), stem + ".png")
    print(text, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--jobs", type=int, default=1, help="methods trained at once")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    for scenario in args.scenarios:
        print(f"Scenario {scenario}: {', '.join(args.methods)}", flush=True)
        minutes = run_scenario(scenario, args)
        write_results(scenario, minutes, args)


if __name__ == "__main__":
    main()
