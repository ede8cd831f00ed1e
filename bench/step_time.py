#!/usr/bin/env python
"""
What Y-KD costs: the training-iteration time of YKDRCNN at step 1 for fine-tuning (no teacher),
Y-KD (the teacher's heads on the student's trunk), separate-teacher KD (ILOD/MMA: the teacher runs
its own trunk) and Y-KD with interactive feature KD, and the inference time of Dynamic Y-KD with
1, 2 and 4 task modules, measured side by side (round-robin over the configurations, on the same
inputs), with a per-component breakdown and each training configuration's peak memory.

    python bench/step_time.py [--model slim|voc|coco|all] [--quick] [--threads 2]
        [--batch N] [--size HxW] [--mask-per-image 8] [--inference-rpn latest] [--no-memory]

Models (random initialisation, at their real input size, on ``--device``, default cpu):
``slim`` ykd's CPU model (configs/base/mask_rcnn_slim_fpn_cpu.yaml, 128 px, batch 2), ``voc`` the
VOC/SBD paper-parity R-50-C4 (configs/base/mask_rcnn_R_50_C4_voc.yaml, 800 x 1066, batch 1) and
``coco`` the COCO R-50-FPN (configs/base/mask_rcnn_R_50_FPN_coco.yaml, 800 x 1066, batch 1).
Memory: each training configuration runs one iteration in a fresh process; its peak RSS (and the
CUDA peak on a GPU) is reported.

oneDNN stays on, as in training (``--no-mkldnn`` turns it off: then PyTorch runs the mask head's
convolutions of 16 ROIs or more through NNPACK, whose backward made a Y-KD iteration 1.7x a
fine-tuning one instead of 1.35x). OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE
unless set): spinning threads made iterations take seconds instead of milliseconds on a shared,
busy CPU.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import ykd.modeling  # noqa: E402, F401  (registration)
from bench.component_times import (  # noqa: E402
    ComponentTimer,
    inference_components,
    training_components,
)
from ykd.config import add_ykd_config  # noqa: E402

TRAIN_METHODS = ("fine-tuning", "y-kd", "separate-teacher", "y-kd+interactive")
INFERENCE_MODULES = (1, 2, 4)


@dataclass(frozen=True)
class ModelSpec:
    """A model of the benchmark: its config, input size and task split."""

    config: str
    height: int
    width: int
    batch: int
    train_tasks: tuple[int, ...]
    """Classes per task of the training step (step 1: old, new)."""
    first_task: int
    later_task: int
    """Inference with n modules: ``[first_task] + [later_task] * (n - 1)`` classes per task."""
    goals: tuple[float, float]
    """Goals of Y-KD / fine-tuning and inference 4 / 1 modules."""


def _config(*parts: str) -> str:
    return os.path.join(REPO, "configs", "base", *parts)


MODELS = {
    "slim": ModelSpec(
        _config("mask_rcnn_slim_fpn_cpu.yaml"), 128, 128, 2, (10, 5), 10, 5, (1.3, 1.3)
    ),
    "voc": ModelSpec(
        _config("mask_rcnn_R_50_C4_voc.yaml"), 800, 1066, 1, (15, 5), 15, 1, (1.2, 1.15)
    ),
    "coco": ModelSpec(
        _config("mask_rcnn_R_50_FPN_coco.yaml"), 800, 1066, 1, (40, 40), 40, 10, (1.2, 1.15)
    ),
}


def model_spec(name: str, args) -> ModelSpec:
    """Model ``name`` with the command line's batch and input size."""
    spec = MODELS[name]
    if args.batch:
        spec = ModelSpec(**{**spec.__dict__, "batch": args.batch})
    if args.size:
        height, width = (int(side) for side in args.size.split("x"))
        spec = ModelSpec(**{**spec.__dict__, "height": height, "width": width})
    return spec


def model_cfg(spec: ModelSpec, args):
    """The model's config merged on ykd's defaults, with the command line's overrides."""
    cfg = get_cfg()
    add_ykd_config(cfg)
    cfg.merge_from_file(spec.config)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    # Unit-variance inputs: a randomly initialised R-50 (FrozenBN, inputs of std 1 in its
    # config) on raw pixel values gives non-finite boxes; the cost does not depend on the scale.
    cfg.MODEL.PIXEL_STD = [64.0, 64.0, 64.0]
    if args.mask_per_image is not None:
        cfg.MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE = args.mask_per_image
    cfg.MODEL.YKD.INFERENCE.RPN = args.inference_rpn
    return cfg


def build(cfg, classes_per_task: list[int], method: str = "y-kd"):
    """YKDRCNN with ``classes_per_task``, its step-1 losses those of ``method``."""
    cfg = cfg.clone()
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = classes_per_task
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = sum(classes_per_task)
    cfg.MODEL.YKD.TEACHER = "separate" if method == "separate-teacher" else "shared"
    cfg.MODEL.YKD.TRUNK_KD.WEIGHT = 0.0  # the same KD terms for both teachers
    if method == "fine-tuning":
        for key in ("CLS", "BOX", "MASK", "RPN"):
            cfg.MODEL.YKD.KD_WEIGHTS[key] = 0.0
    if method == "y-kd+interactive":  # configs/synthetic/dynamic_ykd_interactive.yaml's terms
        for key in cfg.MODEL.YKD.INTERACTIVE.WEIGHTS:
            cfg.MODEL.YKD.INTERACTIVE.WEIGHTS[key] = 1.0
    torch.manual_seed(0)
    return build_model(cfg)


def make_inputs(spec: ModelSpec, classes: range, seed: int) -> list[dict]:
    """``spec.batch`` random images with 3 rectangular instances each, classes from ``classes``."""
    generator = torch.Generator().manual_seed(seed)
    h, w = spec.height, spec.width
    inputs = []
    for _ in range(spec.batch):
        image = torch.rand(3, h, w, generator=generator) * 255
        x0 = torch.randint(0, w // 2, (3, 1), generator=generator)
        y0 = torch.randint(0, h // 2, (3, 1), generator=generator)
        sides = torch.randint(min(h, w) // 8, min(h, w) // 2, (3, 2), generator=generator)
        boxes = torch.cat([x0, y0, x0 + sides[:, :1], y0 + sides[:, 1:]], dim=1).float()
        masks = torch.zeros(3, h, w, dtype=torch.bool)
        for i, (a, b, c, d) in enumerate(boxes.int().tolist()):
            masks[i, b:d, a:c] = True
        instances = Instances((h, w))
        instances.gt_boxes = Boxes(boxes)
        picks = torch.randint(0, len(classes), (3,), generator=generator)
        instances.gt_classes = torch.tensor([classes[i] for i in picks])
        instances.gt_masks = BitMasks(masks)
        inputs.append({"image": image, "instances": instances})
    return inputs


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_step(model, optimizer, inputs, timer: ComponentTimer, device: str) -> None:
    with timer.wrapping(training_components(model)):
        with timer.section("other forward"):
            losses = model(inputs)
    with timer.section("backward"):
        optimizer.zero_grad()
        sum(losses.values()).backward()
        _synchronize(device)
    with timer.section("optimizer"):
        optimizer.step()
        _synchronize(device)


def _optimizer(model):
    """SGD at learning rate 0: a step's work without changing the weights (a randomly initialised
    R-50 diverges to non-finite losses within a few steps at any useful rate)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)


def bench_training(spec: ModelSpec, cfg, repeats: int, warmup: int, device: str):
    """
    Per method: the median seconds of forward + backward + SGD step at step 1, and the mean
    seconds of each component over the timed iterations.
    """
    old, new = spec.train_tasks
    models = {m: build(cfg, [old, new], m).train() for m in TRAIN_METHODS}
    optimizers = {m: _optimizer(model) for m, model in models.items()}
    times = {m: [] for m in TRAIN_METHODS}
    components = {m: ComponentTimer() for m in TRAIN_METHODS}
    with EventStorage():
        for iteration in range(warmup + repeats):
            inputs = make_inputs(spec, range(old, old + new), seed=iteration)
            for method, model in models.items():
                timer = components[method] if iteration >= warmup else ComponentTimer()
                start = time.perf_counter()
                _train_step(model, optimizers[method], inputs, timer, device)
                if iteration >= warmup:
                    times[method].append(time.perf_counter() - start)
    medians = {m: statistics.median(t) for m, t in times.items()}
    breakdown = {m: {k: v / repeats for k, v in c.seconds.items()} for m, c in components.items()}
    return medians, breakdown


def inference_tasks(spec: ModelSpec, modules: int) -> list[int]:
    return [spec.first_task] + [spec.later_task] * (modules - 1)


def bench_inference(spec: ModelSpec, cfg, repeats: int, warmup: int, device: str):
    """Per number of task modules ("all"): median seconds of a batch, mean seconds per component."""
    models = {n: build(cfg, inference_tasks(spec, n)).eval() for n in INFERENCE_MODULES}
    times = {n: [] for n in INFERENCE_MODULES}
    components = {n: ComponentTimer() for n in INFERENCE_MODULES}
    with torch.no_grad():
        for iteration in range(warmup + repeats):
            inputs = make_inputs(spec, range(spec.first_task), seed=1000 + iteration)
            for n, model in models.items():
                timer = components[n] if iteration >= warmup else ComponentTimer()
                start = time.perf_counter()
                with timer.wrapping(inference_components(model)), timer.section("other"):
                    model(inputs)
                    _synchronize(device)
                if iteration >= warmup:
                    times[n].append(time.perf_counter() - start)
    medians = {n: statistics.median(t) for n, t in times.items()}
    breakdown = {n: {k: v / repeats for k, v in c.seconds.items()} for n, c in components.items()}
    return medians, breakdown


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _peak_memory(name: str, method: str, args) -> dict[str, float]:
    """In a fresh process: peak RSS (and CUDA peak) of one training iteration of ``method``."""
    _set_threads(args)
    spec = model_spec(name, args)
    model = build(model_cfg(spec, args), list(spec.train_tasks), method).train()
    optimizer = _optimizer(model)
    inputs = make_inputs(spec, range(sum(spec.train_tasks)), seed=0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = _vm_kib("VmRSS")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with EventStorage():
        _train_step(model, optimizer, inputs, ComponentTimer(), args.device)
    peak = {
        "rss_peak_mib": _vm_kib("VmHWM") / 1024,
        "rss_step_mib": (_vm_kib("VmHWM") - before) / 1024,
    }
    if args.device.startswith("cuda"):
        peak["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def bench_memory(name: str, args) -> dict[str, dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return {m: pool.apply(_peak_memory, (name, m, args)) for m in TRAIN_METHODS}


def _set_threads(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn


def _breakdown_table(breakdown: dict, columns: list) -> list[str]:
    names = sorted({k for b in breakdown.values() for k in b}, key=_component_order)
    header = f"  {'ms':<27}" + "".join(f"{str(c):>18}" for c in columns)
    rows = [header]
    for name in names:
        cells = "".join(f"{breakdown[c].get(name, 0.0) * 1000:18.1f}" for c in columns)
        rows.append(f"  {name:<27}{cells}")
    totals = "".join(f"{sum(breakdown[c].values()) * 1000:18.1f}" for c in columns)
    return rows + [f"  {'total (mean)':<27}{totals}"]


COMPONENT_ORDER = ("trunk", "teacher trunk", "RPN", "box heads", "mask head", "KD: teacher")


def _component_order(name: str) -> tuple[int, str]:
    index = next((i for i, p in enumerate(COMPONENT_ORDER) if name.startswith(p)), 99)
    return index, name


def run_model(name: str, args) -> tuple[str, dict]:
    """Measure model ``name``; print its tables; return its one-line summary and its record."""
    spec = model_spec(name, args)
    repeats = args.repeats or (2 if args.quick else 10)
    warmup = args.warmup if args.warmup >= 0 else (1 if args.quick or args.repeats else 2)
    cfg = model_cfg(spec, args)
    lines = []

    def show(*rows):
        lines.extend(rows)
        print(*rows, sep="\n", flush=True)

    show(
        f"== {name}: {os.path.relpath(spec.config, REPO)}, {spec.batch} x {spec.height}x"
        f"{spec.width} px, {torch.get_num_threads()} threads, {args.device}"
    )
    train, train_parts = bench_training(spec, cfg, repeats, warmup, args.device)
    show(
        *(f"train  {m:<17} {t * 1000:9.1f} ms/iter (median of {repeats})" for m, t in train.items())
    )
    show(*_breakdown_table(train_parts, list(TRAIN_METHODS)))
    inference, inference_parts = bench_inference(spec, cfg, repeats, warmup, args.device)
    show(
        *(
            f"infer  {n} task module(s)    {t * 1000:9.1f} ms/batch (median of {repeats})"
            for n, t in inference.items()
        )
    )
    show(*_breakdown_table(inference_parts, list(INFERENCE_MODULES)))
    memory = {} if args.no_memory else bench_memory(name, args)
    for method, peak in memory.items():
        show(f"memory {method:<17} " + "  ".join(f"{k} {v:8.0f}" for k, v in peak.items()))
    ykd = train["y-kd"] / train["fine-tuning"]
    separate = train["separate-teacher"] / train["fine-tuning"]
    modules = inference[4] / inference[1]
    ykd_goal, modules_goal = spec.goals
    verdict = "met" if ykd <= ykd_goal and modules <= modules_goal else "missed"
    summary = (
        f"{name}: y-kd/ft={ykd:.2f} (goal <= {ykd_goal}) separate/ft={separate:.2f}"
        f" interactive/y-kd={train['y-kd+interactive'] / train['y-kd']:.2f}"
        f" infer4/infer1={modules:.2f} (goal <= {modules_goal}) goals {verdict};"
        f" batch {spec.batch}x{spec.height}x{spec.width} threads {torch.get_num_threads()}"
        f" mask_per_image {cfg.MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE}"
        f" inference_rpn {args.inference_rpn}"
    )
    record = {
        "model": name,
        "train_seconds": train,
        "train_components": train_parts,
        "inference_seconds": {str(n): t for n, t in inference.items()},
        "inference_components": {str(n): c for n, c in inference_parts.items()},
        "memory_mib": memory,
        "summary": summary,
        "text": "\n".join(lines),
    }
    return summary, record


def write_record(record: dict, args, argv: list[str]) -> None:
    """
    ``bench/results/step_time_<model>[_rpn-latest][_mask<k>].{json,md}`` with the command and
    commit.
    """
    from bench.seed_tables import write_results

    suffix = "_rpn-latest" if args.inference_rpn == "latest" else ""
    if args.mask_per_image is not None:
        suffix += f"_mask{args.mask_per_image}"
    stem = os.path.join(args.results_dir, f"step_time_{record['model']}{suffix}")
    command = "python bench/step_time.py " + " ".join(argv)
    text = f"```\n{record['text']}\n{record['summary']}\n```\n"
    write_results(stem, text, command, {k: v for k, v in record.items() if k != "text"})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="slim", choices=[*MODELS, "all"])
    parser.add_argument("--quick", action="store_true", help="2 timed iterations (slim < 1 min)")
    parser.add_argument("--repeats", type=int, default=0, help="timed iterations (0: by --quick)")
    parser.add_argument("--warmup", type=int, default=-1, help="untimed iterations (-1: 1 or 2)")
    parser.add_argument("--batch", type=int, default=0, help="images per iteration (0: model's)")
    parser.add_argument("--size", default="", help="HxW input size in pixels ('': model's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--device", default="cpu", help="cfg.MODEL.DEVICE")
    parser.add_argument(
        "--no-mkldnn", action="store_true", help="turn oneDNN off (training keeps it on)"
    )
    parser.add_argument(
        "--mask-per-image", type=int, default=None, help="MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE"
    )
    parser.add_argument(
        "--inference-rpn", default="per_task", help="MODEL.YKD.INFERENCE.RPN (per_task, latest)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--write", action="store_true", help="write bench/results/step_time_<model>.{json,md}"
    )
    parser.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    return parser.parse_args(argv)


def main(argv=None) -> list[str]:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    _set_threads(args)
    names = list(MODELS) if args.model == "all" else [args.model]
    summaries = []
    for name in names:
        summary, record = run_model(name, args)
        summaries.append(summary)
        if args.write:
            write_record(record, args, argv)
    print("step_time:", *summaries, sep="\n  ")
    return summaries


if __name__ == "__main__":
    main()
