#!/usr/bin/env python
"""
The synthetic continual benchmark behind `make bench-scenarios`: every method on the synthetic
scenarios with the CPU benchmark schedule, then, per scenario, the comparison table and plot,
committed as ``bench/results/synthetic_<scenario>.{json,md,png}``.

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
from ykd.engine import setup_step_cfg  # noqa: E402
from ykd.engine.results import compare_methods  # noqa: E402
from ykd.engine.scenario import finished_results, load_method_results  # noqa: E402
from ykd.utils import write_json_atomic, write_text_atomic  # noqa: E402

METHODS = ["ft", "joint", "ilod", "faster_ilod", "mma", "mma_plus", "ykd", "dynamic_ykd"]
# Dynamic Y-KD with interactive feature KD or a three-stage loss schedule (run on request).
VARIANTS = ["dynamic_ykd_interactive", "dynamic_ykd_3stage"]
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


def method_command(
    method: str, scenario: str, output_root: str, opts: list[str], steps: list[str] | None = None
) -> list[str]:
    """The train_net command of one method on one scenario: all its steps, or ``steps``
    (joint: its last step only)."""
    if steps is None:
        steps = ["--all-steps"]
        if method == "joint":  # resumed: a finished one is only evaluated again
            last = parse_scenario(scenario, NUM_CLASSES).num_steps - 1
            steps = ["--step", str(last), "--resume"]
    config = os.path.join(REPO, "configs", "synthetic", f"{method}.yaml")
    return (
        [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config]
        + ["--scenario", scenario]
        + steps
        + ["CONTINUAL.OUTPUT_ROOT", output_root]
        + schedule(scenario, method)
        + opts
    )


def run(command: list[str], log_name: str, scenario: str, args, threads: int) -> None:
    """Run ``command`` with ``threads`` threads, its output appended to a log in the scenario folder."""
    folder = os.path.join(args.output_root, "synthetic", scenario)
    os.makedirs(folder, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(os.path.join(folder, f"bench_{log_name}.log"), "a") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    print(f"  {scenario} {log_name}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)


def step0_finished(method: str, scenario: str, args) -> bool:
    """Whether the shared step 0 of ``scenario`` (with ``method``'s config) is trained already."""
    config = os.path.join(REPO, "configs", "synthetic", f"{method}.yaml")
    opts = ["CONTINUAL.OUTPUT_ROOT", args.output_root] + schedule(scenario, method) + args.opts
    return finished_results(setup_step_cfg(config, opts, scenario=scenario, step=0)) is not None


def run_scenario(scenario: str, args) -> None:
    """
    The shared step 0 alone (all cores, unless trained already), then every method,
    ``args.jobs`` at a time (the cores shared among them).
    """
    first = next(m for m in args.methods if m != "joint")
    if not step0_finished(first, scenario, args):
        step0 = method_command(first, scenario, args.output_root, args.opts, ["--step", "0"])
        run(step0, "step0", scenario, args, os.cpu_count() or 1)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)

    def run_method(method):
        command = method_command(method, scenario, args.output_root, args.opts)
        run(command, method, scenario, args, threads)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run_method, args.methods))


def write_results(scenario: str, args) -> None:
    """
    ``bench/results/synthetic_<scenario>.{json,md,png}``: the comparison of every method run in
    the scenario's folder (iteration costs are measured side by side by bench/step_time.py: the
    methods here train at different times, under different loads).
    """
    folder = os.path.join(args.output_root, "synthetic", scenario)
    results = load_method_results([folder])
    stem = os.path.join(args.results_dir, f"synthetic_{scenario}")
    command = f"python bench/scenarios.py --scenarios {scenario} --jobs {args.jobs}"
    write_json_atomic(
        stem + ".json",
        {
            "command": command,
            "schedules": {r["method"]: schedule(scenario, r["method"]) for r in results},
            "methods": results,
        },
    )
    text = compare_methods(results)
    write_text_atomic(stem + ".md", text + f"\nCommand: `{command}`\n")
    shutil.copyfile(os.path.join(folder, "plots", "methods.png"), stem + ".png")
    print(text, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS + VARIANTS)
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--jobs", type=int, default=1, help="methods trained at once")
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the results files, train nothing"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    for scenario in args.scenarios:
        if not args.tables_only:
            print(f"Scenario {scenario}: {', '.join(args.methods)}", flush=True)
            run_scenario(scenario, args)
        write_results(scenario, args)


if __name__ == "__main__":
    main()
