#!/usr/bin/env python
"""
Train and evaluate the steps of a continual instance-segmentation scenario.

    python tools/train_net.py --config-file configs/synthetic/ft.yaml --scenario 15-5 --step 0
    python tools/train_net.py --config-file configs/synthetic/dynamic_ykd.yaml --scenario 15-5 --all-steps
    python tools/train_net.py --config-file ... --scenario 15-5 --step 1 --eval-only
    python tools/train_net.py --config-file ... --num-gpus 2 SOLVER.IMS_PER_BATCH 16

A step writes to ``<CONTINUAL.OUTPUT_ROOT>/<dataset>/<scenario>/<method>/step<t>/``; step 0 is
shared by the methods of a scenario. ``--all-steps`` skips finished steps, resumes an unfinished
one, and writes the method's ``results.json``, ``results.md`` and plots.

A user error (bad scenario, step or method, missing data or checkpoint, no GPU for a ``cuda``
config) prints its one-line message alone on stderr and exits with status 2 (``--debug``: with
its traceback).
"""

import argparse
import logging
import os

# isort: off
import ykd  # noqa: F401  (first: registers ykd's modules, hides known upstream warnings)

# isort: on
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from ykd.engine import ContinualTrainer, get_ykd_cfg, link_shared_step0, method_dir, setup_step_cfg
from ykd.engine.cli import check_device, run_cli
from ykd.engine.evaluate import evaluate_checkpoint, evaluation_target, split_weights
from ykd.engine.scenario import ScenarioProgress, finished_results, write_method_results
from ykd.utils import write_text_atomic
from ykd.utils.warnings import filter_upstream_warnings

logger = logging.getLogger("ykd")


def build_parser():
    parser = default_argument_parser(__doc__)
    parser.add_argument("--scenario", default=None, help="scenario 'A-B' (CONTINUAL.SCENARIO)")
    parser.add_argument("--step", type=int, default=None, help="step to run (CONTINUAL.STEP)")
    parser.add_argument(
        "--all-steps", action="store_true", help="run every step of the scenario, from step 0"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
    return parser


def setup(args):
    """The config of ``--step``, with Detectron2's set-up (logging, config dump, seeds)."""
    cfg = setup_step_cfg(args.config_file, args.opts, scenario=args.scenario, step=args.step)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ykd")
    return cfg


def setup_scenario_step(args, step: int):
    """
    The config of one step of a whole-scenario run: the first call sets up Detectron2's logging
    into the method's folder; every step gets its config.yaml and seeds.
    """
    cfg = setup_step_cfg(args.config_file, args.opts, scenario=args.scenario, step=step)
    if step == 0:
        logged = cfg.clone()
        logged.defrost()
        logged.OUTPUT_DIR = method_dir(cfg)
        default_setup(logged, args)
        setup_logger(logged.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ykd")
    if comm.is_main_process():
        write_text_atomic(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + comm.get_rank())
    return cfg


def evaluate_only(args):
    """
    Evaluate the step's ``model_final.pth``, or the ``MODEL.WEIGHTS`` given on the command line
    (e.g. an averaged checkpoint), whose evaluation goes to ``eval_<name>/`` in the step's folder.
    The step's folder is that of the config without the command-line weights.
    """
    opts, weights = split_weights(args.opts)
    cfg = setup(argparse.Namespace(**{**vars(args), "opts": opts}))
    weights, folder = evaluation_target(cfg, weights)
    return evaluate_checkpoint(ContinualTrainer, cfg, weights, folder)


def run_step(cfg, resume: bool):
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    return trainer.train()


def link_step0(cfg) -> None:
    """Step 0 is shared by the methods of a scenario: link it into the method's folder."""
    if cfg.CONTINUAL.STEP == 0 and comm.is_main_process():
        link_shared_step0(cfg)


def run_all_steps(args):
    cfg = setup_scenario_step(args, 0)
    progress = ScenarioProgress(cfg)
    for step in range(progress.num_steps):
        cfg = setup_scenario_step(args, step) if step else cfg
        results = finished_results(cfg)
        if results is None:
            progress.start(step)
            results = run_step(cfg, resume=True)
        link_step0(cfg)
        progress.done(step, results)
    if comm.is_main_process():
        folder = write_method_results(cfg)
        logger.info(f"Scenario results written to {folder}")
    return results


def main(args):
    if args.all_steps:
        return run_all_steps(args)
    if args.eval_only:
        return evaluate_only(args)
    cfg = setup(args)
    results = run_step(cfg, resume=args.resume)
    link_step0(cfg)
    if comm.is_main_process():
        write_method_results(cfg)
    return results


def check_configured_device(args) -> None:
    """
    Check the ``MODEL.DEVICE`` of the config file and command-line options before launching
    (a missing config file is reported by the set-up of the step).
    """
    if not os.path.isfile(args.config_file):
        return
    cfg = get_ykd_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts))
    check_device(cfg.MODEL.DEVICE)


def cli(argv=None):
    filter_upstream_warnings()
    args = build_parser().parse_args(argv)

    def run():
        check_configured_device(args)
        return launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )

    return run_cli(run, debug=args.debug)


if __name__ == "__main__":
    cli()
