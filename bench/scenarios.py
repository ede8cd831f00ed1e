#!/usr/bin/env python
"""
The synthetic continual benchmark behind `make bench-scenarios`: every method on the synthetic
scenarios, several seeds of the incremental steps (and optionally several class orders), then,
per scenario, the table of mean ± std over seeds and its plot, in
``bench/results/synthetic_<scenario>.{json,md,png}``.

    python bench/scenarios.py [--scenarios 15-5 15-1 19-1 10-10] [--methods ft ...] [--jobs 2]
        [--seeds 3] [--class-orders 1] [opts ...]

Schedules are the configs' own (configs/base/mask_rcnn_slim_fpn_cpu.yaml): step 0 2700 iterations,
trained once per set of step-0 classes (15-5 and 15-1 share it); incremental steps by
``CONTINUAL.STEP_RULES`` (100 iterations for a one-class step, 400 for more). Joint training
(configs/synthetic/joint.yaml, 4050 iterations) is trained once per class order on all 20 classes
and evaluated as every scenario's last step. The methods of SEEDED_METHODS run ``--seeds`` seeds
(``CONTINUAL.INCREMENTAL_SEED`` 0, 1, ...), the others one. Class order 0 is the dataset's order,
order k > 0 the permutation of ``CONTINUAL.CLASS_ORDER_SEED`` k. Progress lines give the elapsed
time and the ETA of the whole benchmark; a rerun skips every finished step.
A failed run is reported on its progress line and the benchmark goes on without it (the methods of
a failed step 0 are not run); the command then exits with status 1, listing the failures.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.seed_tables import file_digest, write_scenario_results  # noqa: E402
from ykd.data import parse_scenario  # noqa: E402
from ykd.data.datasets.sources import build_source  # noqa: E402
from ykd.engine import setup_step_cfg  # noqa: E402
from ykd.engine.scenario import finished_results, write_method_results  # noqa: E402

METHODS = ["ft", "joint", "ilod", "faster_ilod", "mma", "mma_plus", "ykd", "dynamic_ykd"]
SEEDED_METHODS = ("ft", "mma_plus", "ykd", "dynamic_ykd")
# Dynamic Y-KD with interactive feature KD or a three-stage loss schedule (run on request).
VARIANTS = ["dynamic_ykd_interactive", "dynamic_ykd_3stage"]
SCENARIOS = ["15-5", "15-1", "19-1", "10-10"]
NUM_CLASSES = 20
JOINT_SCENARIO = f"{NUM_CLASSES}-0"
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")
# Cost of an iteration relative to fine-tuning (for the ETA only), and of one evaluation.
ITERATION_COST = {"ft": 1.0, "joint": 1.0, "ilod": 1.6, "faster_ilod": 1.6, "mma": 1.6}
EVALUATION_COST = 60.0


def config_path(method: str) -> str:
    return os.path.join(REPO, "configs", "synthetic", f"{method}.yaml")


@dataclass(frozen=True)
class Run:
    """One training job of the benchmark: a step-0 model, a joint model or a method's steps."""

    kind: str  # "step0", "joint" or "method"
    scenario: str
    method: str
    seed: int
    order: int

    @property
    def name(self) -> str:
        suffix = f" seed {self.seed}" if self.kind == "method" else ""
        return f"order {self.order} {self.scenario} {self.method}{suffix}"


def base_opts(output_root: str, order: int, extra: list[str]) -> list[str]:
    """Opts shared by every run of class order ``order``: its output root and class order."""
    root = output_root if order == 0 else os.path.join(output_root, f"order{order}")
    opts = ["CONTINUAL.OUTPUT_ROOT", root, "CONTINUAL.VIS_NUM_IMAGES", "0"]
    if order:
        opts += ["CONTINUAL.CLASS_ORDER_SEED", str(order)]
    return opts + list(extra)


def run_opts(run: Run, args) -> list[str]:
    opts = base_opts(args.output_root, run.order, args.opts)
    if run.kind == "method":
        opts += ["CONTINUAL.INCREMENTAL_SEED", str(run.seed)]
    return opts


def command(run: Run, args) -> list[str]:
    """The train_net command of ``run``."""
    if run.kind == "method":
        steps = ["--scenario", run.scenario, "--all-steps"]
    else:
        steps = ["--scenario", run.scenario, "--step", "0", "--resume"]
    return (
        [sys.executable, TRAIN_NET, "--config-file", config_path(run.method)]
        + steps
        + run_opts(run, args)
    )


def step_cfg(run: Run, args, step: int):
    return setup_step_cfg(config_path(run.method), run_opts(run, args), run.scenario, step)


def finished(run: Run, args) -> bool:
    """Whether every step of ``run`` has its final model and evaluation."""
    steps = parse_scenario(run.scenario, NUM_CLASSES).num_steps if run.kind == "method" else 1
    return all(finished_results(step_cfg(run, args, step)) is not None for step in range(steps))


def cost(run: Run, args) -> float:
    """
    The estimated cost of ``run`` in fine-tuning iterations (for the ETA): the iterations of its
    steps' configs, weighted by the method's cost per iteration, and its evaluations.
    """
    if run.kind != "method":
        return step_cfg(run, args, 0).SOLVER.MAX_ITER + EVALUATION_COST
    steps = range(1, parse_scenario(run.scenario, NUM_CLASSES).num_steps)
    iterations = sum(step_cfg(run, args, step).SOLVER.MAX_ITER for step in steps)
    return iterations * ITERATION_COST.get(run.method, 1.8) + EVALUATION_COST * len(steps)


def plan(args) -> list[list[Run]]:
    """
    The runs in groups trained one after the other: per class order, joint training, then per
    scenario its step 0 (when no earlier scenario has the same step-0 classes) and its methods.
    """
    groups = []
    for order in range(args.class_orders):
        if "joint" in args.methods:
            groups.append([Run("joint", JOINT_SCENARIO, "joint", 0, order)])
        step0_classes = set()
        for scenario in args.scenarios:
            group = []
            if scenario.split("-")[0] not in step0_classes:
                step0_classes.add(scenario.split("-")[0])
                group.append(Run("step0", scenario, "ft", 0, order))
            for method in (m for m in args.methods if m != "joint"):
                seeds = args.seeds if method in SEEDED_METHODS else 1
                group += [Run("method", scenario, method, seed, order) for seed in range(seeds)]
            groups.append(group)
    return groups


class Progress:
    """
    Progress of a whole benchmark: jobs done, elapsed time and ETA from the cost done, given the
    estimated cost of each job (``costs``: job -> cost, any unit; a job has a ``name``).
    """

    def __init__(self, costs: dict):
        self.costs = dict(costs)
        self.total = sum(self.costs.values())
        self.count = len(self.costs)
        self.done_cost = 0.0
        self.done = 0
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def finish(self, job, outcome: str) -> None:
        """Count ``job`` as done; ``outcome`` is what the progress line says of it."""
        with self.lock:
            self.done += 1
            self.done_cost += self.costs[job]
            elapsed = time.perf_counter() - self.start
            eta = elapsed * (self.total - self.done_cost) / max(self.done_cost, 1e-9)
            print(
                f"[{self.done}/{self.count}] {job.name}: {outcome}; elapsed"
                f" {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
                flush=True,
            )


class RunFailed(Exception):
    """A run's train_net exited with an error (its log says why)."""


def execute(run: Run, args, threads: int) -> float:
    """
    Run ``run`` with ``threads`` threads, its output appended to a log; return its minutes.
    Raises RunFailed, naming the log, when its train_net fails.
    """
    folder = os.path.join(args.output_root, "logs")
    os.makedirs(folder, exist_ok=True)
    log_path = os.path.join(folder, run.name.replace(" ", "_") + ".log")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(log_path, "a") as log:
        status = subprocess.run(
            command(run, args), env=env, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    if status:
        raise RunFailed(f"{run.name}: exit status {status}, log {log_path}")
    return (time.perf_counter() - start) / 60


def evaluate_joint(scenario: str, order: int, args) -> None:
    """
    Joint training's record in ``scenario``: the joint model of ``order`` (all classes, one
    task) linked as the scenario's last joint step and evaluated there with its groups.
    """
    last = parse_scenario(scenario, NUM_CLASSES).num_steps - 1
    run = Run("joint", scenario, "joint", 0, order)
    cfg = step_cfg(run, args, last)
    if finished_results(cfg) is None:
        joint = Run("joint", JOINT_SCENARIO, "joint", 0, order)
        model = os.path.join(step_cfg(joint, args, 0).OUTPUT_DIR, "model_final.pth")
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        link = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(model, cfg.OUTPUT_DIR), link)
        subprocess.run(
            [sys.executable, TRAIN_NET, "--config-file", config_path("joint"), "--scenario"]
            + [scenario, "--step", str(last), "--eval-only"]
            + run_opts(run, args),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    write_method_results(cfg)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS + VARIANTS)
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds of " + ", ".join(SEEDED_METHODS)
    )
    parser.add_argument("--class-orders", type=int, default=1, help="class orders (0 = dataset's)")
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the results files, train nothing"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    groups = plan(args)
    runs = [run for group in groups for run in group]
    pending = [] if args.tables_only else [r for r in runs if not finished(r, args)]
    print(f"{len(pending)} of {len(runs)} runs to train", flush=True)
    progress = Progress({run: cost(run, args) for run in pending})
    threads = max(1, (os.cpu_count() or 1) // args.jobs)

    failures = []

    def train(run, num_threads=threads) -> bool:
        """Train ``run``; a failure is reported and the benchmark goes on without it."""
        try:
            progress.finish(run, f"{execute(run, args, num_threads):.1f} min")
            return True
        except RunFailed as error:
            failures.append(str(error))
            progress.finish(run, f"FAILED ({error})")
            return False

    with ThreadPoolExecutor(args.jobs) as pool:
        for group in groups:
            todo = [r for r in group if r in pending]
            # A step 0 (or joint training) alone with every core, before the methods that start
            # from it; without their step 0 the methods are not run.
            alone = [r for r in todo if r.kind != "method"]
            failed = [r for r in alone if not train(r, os.cpu_count() or 1)]
            methods = [r for r in todo if r.kind == "method"]
            if any(r.kind == "step0" for r in failed):
                for run in methods:
                    failures.append(f"{run.name}: not run, its step 0 failed")
                    progress.finish(run, "not run (its step 0 failed)")
            else:
                trained = list(pool.map(train, methods))
                finished_before = [r for r in group if r.kind == "method" and r not in pending]
                if group[-1].kind == "method" and (finished_before or any(trained)):
                    write_results(group[-1].scenario, group[-1].order, args)
    if failures:
        sys.exit(f"{len(failures)} runs failed:\n" + "\n".join(failures))


def write_results(scenario: str, order: int, args) -> None:
    """The scenario's results files (joint training's record first, when it is trained)."""
    if "joint" in args.methods:
        joint = Run("joint", JOINT_SCENARIO, "joint", 0, order)
        if finished(joint, args):
            evaluate_joint(scenario, order, args)
    root = base_opts(args.output_root, order, [])[1]
    source = build_source(step_cfg(Run("method", scenario, "ft", 0, order), args, 0))
    data = {
        os.path.basename(files.json_file): file_digest(files.json_file)
        for files in (source.split("train"), source.split("test"))
        if os.path.exists(files.json_file)
    }
    write_scenario_results(scenario, root, order, args, METHODS + VARIANTS, data)


if __name__ == "__main__":
    main()
