#!/usr/bin/env python
"""
Dynamic Y-KD's open choices, measured on the synthetic DEV split (images drawn apart from the test
images that the benchmark reports, ``CONTINUAL.TEST_SPLIT dev``), so that the defaults of
``configs/synthetic/dynamic_ykd.yaml`` are chosen without looking at the test numbers:

- ``trunk``: remedies for the drift of the shared trunk under the frozen old modules
  (``MODEL.YKD.TRUNK.LR_FACTOR`` 0.1 and 0, ``MODEL.YKD.TRUNK.FREEZE_NORM``, and Faster-ILOD's
  trunk feature KD from a separate teacher);
- ``kd_weights``: MMA's classification-KD weight for five-class steps (0.5);
- ``inference``: ``MODEL.YKD.INFERENCE.RPN latest`` and ``INFERENCE.SCORES renormalise``,
  evaluated on the default runs (inference only);
- ``averaging``: checkpoint averaging of the last step with the step before it (α 0.25 and 0.5),
  with the step's own trunk or the previous step's (``MODEL.YKD.AVERAGING.TRUNK``).

    python bench/ablations.py [--scenarios 15-1 15-5] [--questions trunk ...]
        [--variants trunk_frozen ...] [--seeds 3] [--jobs 2] [opts ...]

The default variant is the benchmark's own ``dynamic_ykd`` runs (same output root, shared step 0;
``bench/scenarios.py`` reuses them); every other trained variant runs as method
``dynamic_ykd_<variant>``. Per scenario, ``bench/results/ablations_<scenario>.{json,md}`` give
the last step's old / new / all-class mask AP on the dev split, mean ± std over seeds, and the
difference to the default paired by seed. A rerun skips finished trainings and evaluations.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.scenarios import (  # noqa: E402
    EVALUATION_COST,
    ITERATION_COST,
    NUM_CLASSES,
    TRAIN_NET,
    Progress,
    base_opts,
    config_path,
)
from bench.seed_tables import fmt, mean_std, write_results  # noqa: E402
from ykd.data import parse_scenario  # noqa: E402
from ykd.engine import setup_step_cfg  # noqa: E402
from ykd.engine.decomposition import evaluate_variant  # noqa: E402
from ykd.engine.scenario import finished_results  # noqa: E402
from ykd.engine.step_averaging import evaluate_step_average  # noqa: E402
from ykd.engine.trainer import ContinualTrainer  # noqa: E402

METHOD = "dynamic_ykd"
DEV = ["CONTINUAL.TEST_SPLIT", "dev"]
GROUPS = ("old", "new", "all")


@dataclass(frozen=True)
class Variant:
    """
    One setting of an open choice: ``training`` opts give it runs of its own; ``inference`` opts
    only change the evaluation of the default runs; ``alpha`` > 0 evaluates the last step of the
    default runs averaged with the step before (``previous_trunk``: with that step's trunk).
    """

    name: str
    question: str
    training: tuple[str, ...] = ()
    inference: tuple[str, ...] = ()
    alpha: float = 0.0
    previous_trunk: bool = False

    @property
    def method(self) -> str:
        return f"{METHOD}_{self.name}" if self.training else METHOD


VARIANTS = (
    Variant("default", "default"),
    Variant("trunk_lr0.1", "trunk", training=("MODEL.YKD.TRUNK.LR_FACTOR", "0.1")),
    Variant("trunk_frozen", "trunk", training=("MODEL.YKD.TRUNK.LR_FACTOR", "0.0")),
    Variant("trunk_norm_frozen", "trunk", training=("MODEL.YKD.TRUNK.FREEZE_NORM", "True")),
    # Faster-ILOD's trunk feature KD, which needs the step-(t-1) trunk: a separate teacher.
    Variant(
        "trunk_kd",
        "trunk",
        training=("MODEL.YKD.TEACHER", "separate", "MODEL.YKD.TRUNK_KD.WEIGHT", "1.0"),
    ),
    Variant("kd_cls0.5", "kd_weights", training=("MODEL.YKD.KD_WEIGHTS.CLS", "0.5")),
    Variant("rpn_latest", "inference", inference=("MODEL.YKD.INFERENCE.RPN", "latest")),
    Variant(
        "scores_renormalise", "inference", inference=("MODEL.YKD.INFERENCE.SCORES", "renormalise")
    ),
    Variant("alpha0.25", "averaging", alpha=0.25),
    Variant("alpha0.5", "averaging", alpha=0.5),
    Variant("alpha0.25_previous_trunk", "averaging", alpha=0.25, previous_trunk=True),
)
QUESTIONS = sorted({v.question for v in VARIANTS} - {"default"})
# Questions that only matter where a step adds several classes (MMA's KD weight is 1 for one).
MULTI_CLASS_QUESTIONS = ("kd_weights",)


@dataclass(frozen=True)
class Job:
    """The training (``kind`` "train") or the dev evaluation ("evaluate") of one variant's seed."""

    kind: str
    variant: Variant
    scenario: str
    seed: int

    @property
    def name(self) -> str:
        what = "trained" if self.kind == "train" else f"{self.variant.name} evaluated"
        return f"{self.scenario} {self.variant.method} seed {self.seed} {what}"


def run_opts(variant: Variant, seed: int, args) -> list[str]:
    """The opts of ``variant``'s training run of ``seed``."""
    opts = base_opts(args.output_root, 0, args.opts) + ["CONTINUAL.INCREMENTAL_SEED", str(seed)]
    return opts + ["CONTINUAL.METHOD", variant.method, *variant.training]


def last_step(scenario: str) -> int:
    return parse_scenario(scenario, NUM_CLASSES).num_steps - 1


def trained(variant: Variant, scenario: str, seed: int, args) -> bool:
    opts = run_opts(variant, seed, args)
    cfg = setup_step_cfg(config_path(METHOD), opts, scenario, last_step(scenario))
    return finished_results(cfg) is not None


def cost(job: Job, args) -> float:
    """The estimated cost of ``job`` in fine-tuning iterations, as bench/scenarios.py's."""
    if job.kind == "evaluate":
        return EVALUATION_COST
    opts = run_opts(job.variant, job.seed, args)
    steps = range(1, last_step(job.scenario) + 1)
    cfgs = [setup_step_cfg(config_path(METHOD), opts, job.scenario, step) for step in steps]
    iterations = sum(cfg.SOLVER.MAX_ITER for cfg in cfgs)
    return iterations * ITERATION_COST.get(METHOD, 1.8) + EVALUATION_COST * len(cfgs)


def train(variant: Variant, scenario: str, seed: int, args) -> None:
    """Train every step of ``variant`` on ``scenario`` from its shared step 0, log appended."""
    opts = run_opts(variant, seed, args)
    folder = os.path.join(args.output_root, "logs")
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, f"ablation_{scenario}_{variant.method}_seed{seed}.log")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, TRAIN_NET, "--config-file", config_path(METHOD)]
    command += ["--scenario", scenario, "--all-steps", *opts]
    with open(log, "a") as out:
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)


def averaged_dev_eval(variant: Variant, scenario: str, opts: list[str]) -> dict:
    """The dev evaluation of the last step averaged with the step before (cached on disk)."""
    step = last_step(scenario)
    cfg = setup_step_cfg(config_path(METHOD), opts + DEV, scenario, step)
    name = f"alpha{variant.alpha:g}" + ("_previous_trunk" if variant.previous_trunk else "")
    folder = os.path.join(cfg.OUTPUT_DIR, "ablations", name)
    path = os.path.join(folder, "eval_dev", "eval.json")
    if not os.path.exists(path):
        if variant.previous_trunk:
            previous = setup_step_cfg(config_path(METHOD), opts, scenario, step - 1)
            cfg.defrost()
            cfg.MODEL.YKD.AVERAGING.TRUNK = os.path.join(previous.OUTPUT_DIR, "model_final.pth")
        model = os.path.join(folder, "model.pth")
        evaluate_step_average(ContinualTrainer, cfg, variant.alpha, model, os.path.dirname(path))
        os.remove(model)
    with open(path) as f:
        return json.load(f)


def dev_eval(variant: Variant, scenario: str, seed: int, args) -> dict:
    """The dev-split evaluation of the last step of ``variant``'s run of ``seed``."""
    trained = variant if variant.training else VARIANTS[0]
    opts = run_opts(trained, seed, args)
    if variant.alpha:
        return averaged_dev_eval(variant, scenario, opts)
    extra = DEV + list(variant.inference)
    name = "eval_dev" + (f"_{variant.name}" if variant.inference else "")
    return evaluate_variant(config_path(METHOD), opts, scenario, last_step(scenario), extra, name)


def group_ap(evaluation: dict, group: str) -> float:
    return evaluation["segm"][f"{group}/AP"]


def table(scenario: str, variants: list[Variant], evals: dict) -> tuple[str, dict]:
    """Markdown and JSON rows: dev mask AP per group, and the paired difference to the default."""
    columns = [
        "variant",
        "question",
        "seeds",
        *(f"mask AP {g}" for g in GROUPS),
        "Δ all vs default",
    ]
    rows = {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    default = evals["default"]
    for variant in variants:
        runs = evals[variant.name]
        row = {g: mean_std([group_ap(e, g) for e in runs.values()]) for g in GROUPS}
        paired = [group_ap(e, "all") - group_ap(default[s], "all") for s, e in runs.items()]
        row["delta_all"] = None if variant.name == "default" else mean_std(paired)
        row["seeds"] = sorted(runs)
        rows[variant.name] = {"question": variant.question, **row}
        cells = [variant.name, variant.question, str(len(runs))]
        cells += [fmt(row[g]) for g in GROUPS] + [fmt(row["delta_all"])]
        lines.append("| " + " | ".join(cells) + " |")
    title = f"### Dynamic Y-KD ablations, synthetic {scenario}, last step, DEV split\n\n"
    return title + "\n".join(lines), rows


def variants_of(
    scenario: str, questions: list[str], names: list[str] | None = None
) -> list[Variant]:
    """
    The default and the variants of ``questions`` (of those, only ``names`` when given) that
    apply to ``scenario``.
    """
    multi = len(parse_scenario(scenario, NUM_CLASSES).task(1)) > 1
    chosen = [v for v in VARIANTS if v.question in questions or v.name == "default"]
    chosen = [v for v in chosen if names is None or v.name in names or v.name == "default"]
    return [v for v in chosen if multi or v.question not in MULTI_CLASS_QUESTIONS]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["15-1", "15-5"])
    parser.add_argument("--questions", nargs="+", default=QUESTIONS, choices=QUESTIONS)
    parser.add_argument(
        "--variants", nargs="+", choices=[v.name for v in VARIANTS], help="only these variants"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output-root", default="output/bench")
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    seeds = range(args.seeds)
    variants = {s: variants_of(s, args.questions, args.variants) for s in args.scenarios}
    trainings = [
        Job("train", v, scenario, seed)
        for scenario, chosen in variants.items()
        for v in chosen
        if v.training or v.name == "default"
        for seed in seeds
        if not trained(v, scenario, seed, args)
    ]
    evaluations = [
        Job("evaluate", v, scenario, seed)
        for scenario, chosen in variants.items()
        for v in chosen
        for seed in seeds
    ]
    print(f"{len(trainings)} trainings, {len(evaluations)} dev evaluations", flush=True)
    progress = Progress({job: cost(job, args) for job in trainings + evaluations})

    def run(job: Job):
        start = time.perf_counter()
        if job.kind == "train":
            train(job.variant, job.scenario, job.seed, args)
            result = None
        else:
            result = dev_eval(job.variant, job.scenario, job.seed, args)
        progress.finish(job, f"{(time.perf_counter() - start) / 60:.1f} min")
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, trainings))
    for scenario, chosen in variants.items():
        evals = {v.name: {} for v in chosen}
        for job in (j for j in evaluations if j.scenario == scenario):
            evals[job.variant.name][job.seed] = run(job)
        markdown, rows = table(scenario, chosen, evals)
        command = "python bench/ablations.py " + " ".join(sys.argv[1:] if argv is None else argv)
        stem = os.path.join(args.results_dir, f"ablations_{scenario}")
        write_results(stem, markdown, command, {"scenario": scenario, "variants": rows})
        print(markdown, flush=True)


if __name__ == "__main__":
    main()
