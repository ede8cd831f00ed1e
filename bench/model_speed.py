#!/usr/bin/env python
"""
Training speed of a config's model on its step-0 data: median seconds per training iteration
(forward + backward + SGD step, data loading excluded) and per-image inference time, for each
ROIAlign backward (``MODEL.ROI_ALIGN_BACKWARD``: torchvision's kernel, the model before the
separable backward, and the separable one), measured side by side in one run (rounds alternate).

    python bench/model_speed.py [--config-file configs/synthetic/joint.yaml] [--iters 30]
"""

import argparse
import statistics
import time

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage

import ykd  # noqa: F401  (registration)
from ykd.engine import setup_step_cfg


def time_training(cfg, iters: int, warmup: int) -> list[float]:
    model = build_model(cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)
    batches = iter(build_detection_train_loader(cfg))
    times = []
    with EventStorage():
        for index in range(warmup + iters):
            data = next(batches)
            start = time.perf_counter()
            losses = sum(model(data).values())
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times, model


def time_inference(cfg, model, images: int) -> list[float]:
    model.eval()
    loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0])
    times = []
    with torch.no_grad():
        for index, data in enumerate(loader):
            if index >= images:
                break
            start = time.perf_counter()
            model(data)
            times.append(time.perf_counter() - start)
    return times


BACKWARDS = ("torchvision", "separable")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default="configs/synthetic/joint.yaml")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per backward")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="SOLVER.IMS_PER_BATCH")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    opts = ["SOLVER.IMS_PER_BATCH", str(args.batch), "CONTINUAL.SCENARIO", "20-0"]
    train_times = {b: [] for b in BACKWARDS}
    infer_times = {b: [] for b in BACKWARDS}
    for _ in range(args.rounds):
        for backward in BACKWARDS:
            cfg = setup_step_cfg(
                args.config_file, opts + args.opts + ["MODEL.ROI_ALIGN_BACKWARD", backward]
            )
            torch.manual_seed(0)
            times, model = time_training(cfg, args.iters, args.warmup)
            train_times[backward] += times
            infer_times[backward] += time_inference(cfg, model, images=20)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters, {torch.get_num_threads()} threads")
    base = statistics.median(train_times["torchvision"])
    for backward in BACKWARDS:
        train = statistics.median(train_times[backward])
        print(
            f"ROIAlign backward {backward:<11}: training {train:.3f} s/iteration (median of"
            f" {len(train_times[backward])}, batch {args.batch}, {base / train:.2f}x),"
            f" inference {statistics.median(infer_times[backward]):.3f} s/image"
        )


if __name__ == "__main__":
    main()
