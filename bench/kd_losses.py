#!/usr/bin/env python
"""
Forward + backward time of every registered KD loss, relative to ``kl`` timed in the same run.

    python bench/kd_losses.py [--repeats 25] [--threads 1] [--device cpu]

Sizes: R = 512 ROIs x 21 classes (VOC) and 2048 x 81 (COCO), teacher and student over the same
classes, 64 ROIs per image; then SinKD's scaling from R = 128 to 2048 at 21 classes. Each timing is
the median of ``--repeats`` calls (3 above R = 512), the losses taking turns so that load changes hit
them alike.
Target bounds at R = 512: every loss <= 3x KL, SinKD <= 10x KL. Prints a table and writes
bench/results/kd_losses.json.
"""

import argparse
import json
import math
import os
import statistics
import time

import torch

from ykd.distillation import KD_LOSS_REGISTRY, build_kd_loss

SIZES = [(512, 21), (2048, 81)]
SCALING_ROIS = [128, 256, 512, 1024, 2048]
ROIS_PER_IMAGE = 64
GOAL_X_KL = {"sinkd": 10.0}
DEFAULT_GOAL_X_KL = 3.0
VARIANTS = {"sinkd[per_image]": ("sinkd", {"per_image": True})}


def _inputs(rois: int, classes: int, device: str):
    g = torch.Generator().manual_seed(0)
    student = (torch.randn(rois, classes, generator=g) * 3).to(device).requires_grad_(True)
    teacher = (torch.randn(rois, classes, generator=g) * 3).to(device)
    targets = torch.randint(0, classes, (rois,), generator=g).to(device)
    return student, teacher, targets


def _time_call(loss_fn, student, teacher, targets, device: str) -> float:
    student.grad = None
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss_fn(student, teacher, targets=targets, num_rois_per_image=ROIS_PER_IMAGE).backward()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_losses(
    losses: dict, rois: int, classes: int, rounds: int, calls: int, device: str
) -> dict[str, float]:
    """
    Median milliseconds of forward + backward per loss. The losses take turns for ``rounds`` rounds,
    each turn being one untimed call (after another loss's call, caches and the allocator are cold)
    and ``calls`` timed ones.
    """
    inputs = _inputs(rois, classes, device)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(rounds):
        for name, loss_fn in losses.items():
            _time_call(loss_fn, *inputs, device)
            times[name] += [_time_call(loss_fn, *inputs, device) for _ in range(calls)]
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def build_losses() -> dict:
    """Every registered loss with its defaults, ``kl`` first, then the :data:`VARIANTS`."""
    names = ["kl"] + [name for name in KD_LOSS_REGISTRY if name != "kl"]
    losses = {name: build_kd_loss(name) for name in names}
    for label, (name, options) in VARIANTS.items():
        losses[label] = build_kd_loss(name, **options)
    return losses


def goal(label: str) -> float:
    """The target bound on time / kl's time at R = 512 for the loss (or variant) ``label``."""
    return GOAL_X_KL.get(label.split("[")[0], DEFAULT_GOAL_X_KL)


def measure(repeats: int, device: str) -> dict:
    """All timings, as saved in the JSON file."""
    losses = build_losses()
    results = {
        "device": device if device == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": 5 * max(1, repeats // 5),
        "rois_per_image": ROIS_PER_IMAGE,
        "sizes": {},
        "sinkd_scaling": [],
    }
    for rois, classes in SIZES:
        ms = time_losses(losses, rois, classes, *_schedule(repeats, rois), device=device)
        results["sizes"][f"{rois}x{classes}"] = {
            name: {"ms": round(value, 4), "x_kl": round(value / ms["kl"], 2)}
            for name, value in ms.items()
        }
    pair = {"kl": losses["kl"], "sinkd": losses["sinkd"]}
    for rois in SCALING_ROIS:
        ms = time_losses(pair, rois, 21, *_schedule(repeats, rois), device=device)
        results["sinkd_scaling"].append(
            {"rois": rois, "sinkd_ms": round(ms["sinkd"], 4), "kl_ms": round(ms["kl"], 4)}
        )
    small = results["sizes"][f"{SIZES[0][0]}x{SIZES[0][1]}"]
    results["goals_met_at_512"] = {name: small[name]["x_kl"] <= goal(name) for name in small}
    return results


def _schedule(repeats: int, rois: int) -> tuple[int, int]:
    """(rounds, timed calls per round): 5 rounds up to R = 512; one round of 3 calls above (slower,
    less noisy)."""
    return (5, max(1, repeats // 5)) if rois <= 512 else (1, 3)


def print_report(results: dict) -> None:
    print(
        f"KD losses, forward + backward, median of {results['repeats']} ({results['device']}, "
        f"{results['threads']} thread(s)); x KL = time / kl's time in the same run"
    )
    print(
        f"{'loss':<17}"
        + "".join(f" | {size + ' ms':>12} | {'x KL':>6}" for size in results["sizes"])
    )
    for name, ok in results["goals_met_at_512"].items():
        cells = "".join(
            f" | {timing[name]['ms']:>12.3f} | {timing[name]['x_kl']:>6.2f}"
            for timing in results["sizes"].values()
        )
        print(f"{name:<17}{cells} | {'ok' if ok else 'MISS'} (goal <= {goal(name):g}x at R=512)")
    print("\nSinKD scaling at 21 classes (whole batch): time ~ R^exponent")
    print(f"{'R':>6} | {'sinkd ms':>10} | {'kl ms':>8} | {'x KL':>7} | exponent from previous R")
    previous = None
    for entry in results["sinkd_scaling"]:
        exponent = ""
        if previous is not None:
            exponent = math.log(entry["sinkd_ms"] / previous["sinkd_ms"]) / math.log(
                entry["rois"] / previous["rois"]
            )
            exponent = f"{exponent:.2f}"
        print(
            f"{entry['rois']:>6} | {entry['sinkd_ms']:>10.3f} | {entry['kl_ms']:>8.3f} | "
            f"{entry['sinkd_ms'] / entry['kl_ms']:>7.1f} | {exponent}"
        )
        previous = entry


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=25, help="timed calls per loss at R <= 512")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(__file__), "results", "kd_losses.json")
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = measure(args.repeats, args.device)
    print_report(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwritten {args.output}")
    return results


if __name__ == "__main__":
    main()
