"""
Median training-iteration time of YKDRCNN at step 1 for fine-tuning (no teacher), Y-KD (teacher on
the shared trunk), separate-teacher KD (the teacher runs its own trunk) and Y-KD with interactive
feature KD (a 3-stage loss schedule costs what Y-KD does: it only reweights), measured side by side
(round-robin, so that the load of a shared machine hits all alike), and inference time with 1, 2
and 4 task modules ("all" modules). Goals: Y-KD / fine-tuning <= 1.15, inference(4) / (1) <= 1.3.

    python bench/step_time.py [--quick] [--config-file configs/base/....yaml] [--threads 2]
        [--mask-per-image 8] [--inference-rpn latest]

The model is that of ``--config-file``, by default ykd's slim CPU model
(``configs/base/mask_rcnn_slim_fpn_cpu.yaml``).

OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE unless set): spinning threads made
iterations take seconds instead of milliseconds on a shared, busy CPU.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import ykd.modeling  # noqa: E402, F401  (registration)
from ykd.config import add_ykd_config  # noqa: E402

TRAIN_METHODS = ("fine-tuning", "y-kd", "separate-teacher", "y-kd+interactive")
INFERENCE_MODULES = (1, 2, 4)


SLIM_CPU_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "configs",
    "base",
    "mask_rcnn_slim_fpn_cpu.yaml",
)


def model_cfg(config_file: str):
    """``config_file`` merged on ykd's defaults."""
    cfg = get_cfg()
    add_ykd_config(cfg)
    cfg.merge_from_file(config_file)
    return cfg


def build(cfg, classes_per_task: list[int], method: str = "y-kd"):
    cfg = cfg.clone()
    cfg.MODEL.YKD.NUM_CLASSES_PER_TASK = classes_per_task
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = sum(classes_per_task)
    cfg.MODEL.YKD.TEACHER = "separate" if method == "separate-teacher" else "shared"
    if method == "fine-tuning":
        for key in ("CLS", "BOX", "MASK", "RPN"):
            cfg.MODEL.YKD.KD_WEIGHTS[key] = 0.0
    if method == "y-kd+interactive":  # configs/synthetic/dynamic_ykd_interactive.yaml's terms
        for key in cfg.MODEL.YKD.INTERACTIVE.WEIGHTS:
            cfg.MODEL.YKD.INTERACTIVE.WEIGHTS[key] = 1.0
    torch.manual_seed(0)
    return build_model(cfg)


def make_inputs(num_images: int, size: int, classes: range, seed: int) -> list[dict]:
    """Random images with 3 rectangular instances each, of classes drawn from ``classes``."""
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for _ in range(num_images):
        image = torch.rand(3, size, size, generator=generator) * 255
        corners = torch.randint(0, size // 2, (3, 2), generator=generator)
        sides = torch.randint(size // 8, size // 2, (3, 2), generator=generator)
        boxes = torch.cat([corners, corners + sides], dim=1).float()
        masks = torch.zeros(3, size, size, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[i, y0:y1, x0:x1] = True
        instances = Instances((size, size))
        instances.gt_boxes = Boxes(boxes)
        picks = torch.randint(0, len(classes), (3,), generator=generator)
        instances.gt_classes = torch.tensor([classes[i] for i in picks])
        instances.gt_masks = BitMasks(masks)
        inputs.append({"image": image, "instances": instances})
    return inputs


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_training(cfg, repeats: int, warmup: int, batch: int, size: int) -> dict[str, float]:
    """Median seconds of forward + backward + SGD step at step 1 of a 10-5 scenario, per method."""
    models = {m: build(cfg, [10, 5], m).train() for m in TRAIN_METHODS}
    optimizers = {
        m: torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for m, model in models.items()
    }
    times = {m: [] for m in TRAIN_METHODS}
    with EventStorage():
        for iteration in range(warmup + repeats):
            inputs = make_inputs(batch, size, range(10, 15), seed=iteration)
            for method, model in models.items():

                def step(model=model, optimizer=optimizers[method], inputs=inputs):
                    losses = model(inputs)
                    optimizer.zero_grad()
                    sum(losses.values()).backward()
                    optimizer.step()

                elapsed = _timed(step)
                if iteration >= warmup:
                    times[method].append(elapsed)
    return {m: statistics.median(t) for m, t in times.items()}


def bench_inference(cfg, repeats: int, warmup: int, batch: int, size: int) -> dict[int, float]:
    """Median seconds of inference ("all" modules) with 1, 2 and 4 task modules."""
    models = {n: build(cfg, [10] + [5] * (n - 1)).eval() for n in INFERENCE_MODULES}
    times = {n: [] for n in INFERENCE_MODULES}
    with torch.no_grad():
        for iteration in range(warmup + repeats):
            inputs = make_inputs(batch, size, range(10), seed=1000 + iteration)
            for n, model in models.items():
                elapsed = _timed(lambda model=model, inputs=inputs: model(inputs))
                if iteration >= warmup:
                    times[n].append(elapsed)
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config-file",
        default=SLIM_CPU_CONFIG,
        help="the model's YAML config (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="few repeats (< 50 s)")
    parser.add_argument("--batch", type=int, default=2, help="images per iteration")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--mkldnn", action="store_true", help="keep oneDNN (slow on new shapes)")
    parser.add_argument(
        "--mask-per-image", type=int, default=-1, help="MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE"
    )
    parser.add_argument(
        "--inference-rpn", default="per_task", help="MODEL.YKD.INFERENCE.RPN (per_task, latest)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn
    repeats, warmup = (3, 1) if args.quick else (20, 3)
    cfg = model_cfg(args.config_file)
    cfg.MODEL.YKD.KD_PROPOSALS.MASK_PER_IMAGE = args.mask_per_image
    cfg.MODEL.YKD.INFERENCE.RPN = args.inference_rpn

    train = bench_training(cfg, repeats, warmup, args.batch, args.size)
    for method, seconds in train.items():
        print(f"train  {method:<17} {seconds * 1000:8.1f} ms/iter (median of {repeats})")
    inference = bench_inference(cfg, repeats, warmup, args.batch, args.size)
    for n, seconds in inference.items():
        print(f"infer  {n} task module(s)     {seconds * 1000:8.1f} ms/batch (median of {repeats})")
    ykd = train["y-kd"] / train["fine-tuning"]
    separate = train["separate-teacher"] / train["fine-tuning"]
    interactive = train["y-kd+interactive"] / train["y-kd"]
    modules = inference[4] / inference[1]
    print(f"ratio  y-kd / fine-tuning             {ykd:.3f}  (goal <= 1.15)")
    print(f"ratio  separate-teacher / fine-tuning {separate:.3f}")
    print(f"ratio  y-kd+interactive / y-kd        {interactive:.3f}")
    print(f"ratio  inference 4 / 1 modules        {modules:.3f}  (goal <= 1.3)")
    verdict = "OK" if ykd <= 1.15 and modules <= 1.3 else "GOAL MISSED"
    print(
        f"step_time: y-kd/ft={ykd:.2f} separate/ft={separate:.2f}"
        f" interactive/y-kd={interactive:.2f} infer4/infer1={modules:.2f}"
        f" batch={args.batch}x{args.size}px threads={torch.get_num_threads()}"
        f" mask_per_image={args.mask_per_image} inference_rpn={args.inference_rpn} {verdict}"
    )


if __name__ == "__main__":
    main()
