#!/usr/bin/env python
r"""
Average the weights of model checkpoints, θ = Σ_i w_i·θ_i; see ``ykd/checkpoint/averaging.py``
for the conventions. The last input is the target: the keys that
are not averaged, the shapes and the ``ykd_meta`` record come from it. The trunk (``^backbone\.``)
is excluded by default.

Dynamic Y-KD, module 2 of step 2 interpolated with module 1 of step 1 (α = 0.25)::

    python tools/average_checkpoints.py --inputs step1/model_final.pth step2/model_final.pth \
        --weights 0.25 0.75 --output step2/model_alpha0.25.pth \
        --rename task_modules.1.=task_modules.2. --include '^(task_modules\.2|mask_head)\.'

The authors' averaging (``--mode official``): every tensor outside the trunk that both inputs have
in the same shape is interpolated, grown class rows are the target's; ``--trunk PTH`` takes the
trunk from another checkpoint::

    python tools/average_checkpoints.py --mode official --inputs step1/model_final.pth \
        step2/model_final.pth --weights 0.25 0.75 --output step2/model_official.pth \
        --rename task_modules.1.=task_modules.2. [--trunk other/model_final.pth]

The α sweep of step t of a trained scenario (``sweep``): for each α of the grid, module t and the
mask head of step t interpolated with step t-1's, θ = α·θ_(t-1) + (1-α)·θ_t, evaluated; writes
``<step dir>/averaging/``: ``model_alpha<α>.pth``, ``eval_alpha<α>/eval.json``, and
``averaging.json``, ``averaging.md`` and ``averaging.png`` (old / new / all mask AP against α)::

    python tools/average_checkpoints.py sweep --config-file configs/synthetic/dynamic_ykd.yaml \
        --scenario 15-5 --step 1 --alphas 0:1:0.25 [OPTS as for tools/train_net.py]

(``MODEL.YKD.AVERAGING.MODE official`` and ``MODEL.YKD.AVERAGING.TRUNK PTH`` among the OPTS: the
authors' averaging.) Subcommands: ``average`` (the default when none is named) and ``sweep``. A
user error prints its one-line message on stderr and exits with status 2 (``--debug``: with its
traceback).
"""

import argparse
import os
import sys

import ykd  # noqa: F401  (registers ykd's datasets and modules, for sweep)
from ykd.checkpoint.averaging import (
    CLASS_ROWS,
    OFFICIAL_OPTIONS,
    average_checkpoint_files,
    select_keys,
)
from ykd.checkpoint.sweep import AVERAGING_MODES, parse_alpha_grid
from ykd.engine import ContinualTrainer, setup_step_cfg
from ykd.engine.cli import UsageError, run_cli
from ykd.engine.step_averaging import alpha_sweep
from ykd.utils import torch_save_atomic
from ykd.utils.warnings import filter_upstream_warnings

DEFAULT_EXCLUDE = r"^backbone\."


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _prefix_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old:
        raise argparse.ArgumentTypeError(f"expected OLD_PREFIX=NEW_PREFIX, got {text!r}")
    return old, new


def add_average_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "average",
        help="weighted average of checkpoints",
        description="Weighted average of checkpoints; the last input is the target.",
    )
    parser.add_argument("--inputs", nargs="+", required=True, metavar="PTH", help="checkpoints")
    parser.add_argument(
        "--weights", nargs="+", required=True, type=float, help="one weight per input, sum 1"
    )
    parser.add_argument("--output", required=True, help="checkpoint to write (not an input)")
    parser.add_argument(
        "--mode",
        choices=AVERAGING_MODES,
        default="module",
        help="'official': the authors' averaging (every same-shape tensor outside the trunk;"
        " --include, --exclude and --class-rows do not apply)",
    )
    parser.add_argument("--include", default=None, help="average only keys matching this regex")
    parser.add_argument(
        "--exclude",
        default=DEFAULT_EXCLUDE,
        help=f"do not average keys matching this regex (default '{DEFAULT_EXCLUDE}', the trunk;"
        " '' averages every key)",
    )
    parser.add_argument(
        "--class-rows",
        choices=CLASS_ROWS,
        default="shared",
        help="grown predictor tensors: average the shared class rows, or keep the target's",
    )
    parser.add_argument(
        "--trunk", default=None, metavar="PTH", help="take the trunk from this checkpoint"
    )
    parser.add_argument("--normalize", action="store_true", help="rescale weights to sum to 1")
    parser.add_argument(
        "--rename",
        nargs="+",
        action="extend",
        type=_prefix_pair,
        metavar="OLD=NEW",
        help="key prefixes renamed in every input but the last, e.g. task_modules.1.=task_modules.2.",
    )
    parser.set_defaults(func=run_average)


def run_average(args: argparse.Namespace) -> str:
    """Write the average described by ``args``; returns the output path."""
    for path in args.inputs:
        if _same_file(args.output, path):
            raise UsageError(
                f"--output {args.output} is the input {path}: refusing to overwrite it"
            )
    if args.mode == "official":
        options = dict(OFFICIAL_OPTIONS)
    else:
        options = {
            "include": args.include,
            "exclude": args.exclude or None,
            "class_rows": args.class_rows,
        }
    try:
        checkpoint = average_checkpoint_files(
            args.inputs,
            args.weights,
            normalize=args.normalize,
            rename=dict(args.rename or []),
            trunk=args.trunk,
            **options,
        )
    except (ValueError, TypeError, OSError) as err:
        raise UsageError(f"average_checkpoints: {err}") from err
    torch_save_atomic(checkpoint, args.output)
    model = checkpoint["model"]
    record = checkpoint["averaging"]
    keys = select_keys(model, record["include"], record["exclude"])
    averaged = sum(model[k].is_floating_point() for k in keys)
    sources = zip(record["inputs"], record["weights"], strict=True)
    print(
        f"Wrote {args.output}: {averaged} of {len(model)} tensors averaged over"
        f" {', '.join(f'{p} ({w:g})' for p, w in sources)}, the others copied from the last"
    )
    return args.output


def _alpha_grid(text: str) -> list[float]:
    try:
        return parse_alpha_grid(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _step(text: str) -> int:
    step = int(text)
    if step < 1:
        raise argparse.ArgumentTypeError(
            f"the sweep needs a step >= 1 (a previous step), got {step}"
        )
    return step


def add_sweep_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="evaluate step t with module t and the mask head interpolated with step t-1's",
        description="The α sweep of step t: θ = α·θ_(t-1) + (1-α)·θ_t, evaluated for each α.",
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="the method's config")
    parser.add_argument("--scenario", default=None, help="scenario 'A-B' (CONTINUAL.SCENARIO)")
    parser.add_argument("--step", type=_step, required=True, help="the step t >= 1")
    parser.add_argument(
        "--alphas",
        type=_alpha_grid,
        default="0:1:0.25",
        metavar="START:STOP:STEP",
        help="the α grid, both ends included (default 0:1:0.25)",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config options, as for train_net.py"
    )
    parser.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> dict:
    """Average, evaluate and tabulate the α sweep described by ``args``; returns the record."""
    cfg = setup_step_cfg(args.config_file, args.opts, scenario=args.scenario, step=args.step)
    try:
        record = alpha_sweep(ContinualTrainer, cfg, args.alphas)
    except (ValueError, TypeError) as err:
        raise UsageError(f"average_checkpoints sweep: {err}") from err
    folder = os.path.join(cfg.OUTPUT_DIR, "averaging")
    print(f"Wrote the α sweep to {folder}: best α = {record['best_alpha']}")
    return record


# Subcommand name -> function adding its parser (which sets ``func``, the function that runs it).
COMMANDS = {"average": add_average_parser, "sweep": add_sweep_parser}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_parser in COMMANDS.values():
        add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None):
    """Run a subcommand; without one (first argument not a subcommand or -h), ``average``."""
    filter_upstream_warnings()
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = argv[:1] == ["--debug"]
    argv = argv[debug:]
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["average", *argv]
    args = build_parser().parse_args(["--debug"] * debug + argv)
    return run_cli(lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    main()
