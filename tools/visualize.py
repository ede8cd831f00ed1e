#!/usr/bin/env python
"""
Draw a step's predictions (masks, boxes, class names, scores; old classes and new classes in two
colours) on images into one PNG grid.

    python tools/visualize.py --config-file configs/synthetic/dynamic_ykd.yaml --scenario 15-5 \\
        --step 1 --output grid.png
    python tools/visualize.py --config-file ... --scenario 15-5 --step 1 --weights averaged.pth \\
        --input 'my_images/*.jpg' --num 12 --score-thresh 0.3 --output grid.png

The model is the step's ``model_final.pth`` (or ``--weights``); the images are ``--input`` (a
folder or a glob) or, by default, the fixed test images of the step's test dataset, as in the
``predictions.png`` that training writes after each step.
"""

import argparse
import glob
import os

# isort: off
import ykd  # noqa: F401  (first: registers ykd's modules, hides known upstream warnings)

# isort: on
from detectron2.utils.logger import setup_logger

from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.engine.cli import check_device, run_cli
from ykd.evaluation import fixed_test_images, write_prediction_grid
from ykd.utils.warnings import filter_upstream_warnings

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--scenario", default=None, help="scenario 'A-B' (CONTINUAL.SCENARIO)")
    parser.add_argument("--step", type=int, default=None, help="step (CONTINUAL.STEP)")
    parser.add_argument("--weights", default=None, help="default: the step's model_final.pth")
    parser.add_argument(
        "--input", default=None, help="image folder or glob; default: fixed test images"
    )
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument(
        "--num", type=int, default=None, help="at most this many images (default: all --input "
        "images, or CONTINUAL.VIS_NUM_IMAGES test images, 8 if that is 0)",
    )  # fmt: skip
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--score-thresh", type=float, default=0.5)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config KEY VALUE pairs")
    return parser


def input_images(pattern: str) -> list[str]:
    """The image files of a folder, or those matching a glob, sorted by path."""
    if os.path.isdir(pattern):
        paths = [os.path.join(pattern, name) for name in os.listdir(pattern)]
        paths = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
    else:
        paths = glob.glob(pattern)
    if not paths:
        raise FileNotFoundError(f"--input {pattern}: no image found")
    return sorted(paths)


def main(argv=None) -> str:
    args = build_parser().parse_args(argv)
    setup_logger(name="ykd")
    cfg = setup_step_cfg(args.config_file, args.opts, scenario=args.scenario, step=args.step)
    check_device(cfg.MODEL.DEVICE)
    weights = args.weights or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"No checkpoint {weights}: train the step first (tools/train_net.py --config-file"
            f" {args.config_file} --scenario {cfg.CONTINUAL.SCENARIO} --step {cfg.CONTINUAL.STEP}"
            " with the same opts) or give --weights."
        )
    if args.input:
        images = input_images(args.input)[: args.num]
    else:
        num = args.num or cfg.CONTINUAL.VIS_NUM_IMAGES or 8
        images = fixed_test_images(cfg.DATASETS.TEST[0], num)
    # As Detectron2's demo: the model itself drops what is not drawn (no masks pasted for it).
    # Only the model's copy of the config changes, so that the step's folders stay the same.
    model_cfg = cfg.clone()
    model_cfg.defrost()
    model_cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.score_thresh
    model = ContinualTrainer.build_model(model_cfg)
    ContinualTrainer.build_checkpointer(cfg, model).load(weights)
    write_prediction_grid(
        cfg,
        model,
        args.output,
        images=images,
        score_thresh=args.score_thresh,
        columns=args.columns,
    )
    print(f"Predictions of {weights} on {len(images)} images written to {args.output}")
    return args.output


def cli(argv=None) -> str:
    """:func:`main` as a command: a user error prints its message and exits with status 2."""
    filter_upstream_warnings()
    return run_cli(lambda: main(argv), debug=build_parser().parse_args(argv).debug)


if __name__ == "__main__":
    cli()
