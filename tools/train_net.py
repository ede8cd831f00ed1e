#!/usr/bin/env python
"""
Train and evaluate one step of a continual instance-segmentation scenario.

    python tools/train_net.py --config-file configs/synthetic/ft.yaml --scenario 15-5 --step 0
    python tools/train_net.py --config-file ... --scenario 15-5 --step 0 --eval-only
    python tools/train_net.py --config-file ... --num-gpus 2 SOLVER.IMS_PER_BATCH 16

Outputs go to ``<CONTINUAL.OUTPUT_ROOT>/<dataset>/<scenario>/<method>/step<t>/``.
"""

import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, default_setup, launch

import ykd  # noqa: F401  (registers ykd's datasets and modules)
from ykd.engine import ContinualTrainer, setup_step_cfg


def build_parser():
    parser = default_argument_parser(__doc__)
    parser.add_argument("--scenario", default=None, help="scenario 'A-B' (CONTINUAL.SCENARIO)")
    parser.add_argument("--step", type=int, default=None, help="step to run (CONTINUAL.STEP)")
    return parser


def setup(args):
    cfg = setup_step_cfg(args.config_file, args.opts, scenario=args.scenario, step=args.step)
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        weights = cfg.MODEL.WEIGHTS or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        if not os.path.exists(weights):
            raise FileNotFoundError(
                f"--eval-only: no checkpoint {weights}; train this step first or set MODEL.WEIGHTS."
            )
        model = ContinualTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).load(weights)
        return ContinualTrainer.test(cfg, model)
    trainer = ContinualTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def cli(argv=None):
    args = build_parser().parse_args(argv)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
