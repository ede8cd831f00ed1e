#!/usr/bin/env python
"""
Kill soak: a whole short scenario (Dynamic Y-KD with the averaging hook, ``predictions.png``, the
instant schedule ``configs/quick_schedules/synthetic_instant_test.yaml``) is run once without
interruption, then again, killed with SIGKILL at points drawn over the whole run and rerun with the
same command until it finishes. It prints the kill count, where the kills landed and, per artefact
(``results.json``, every step's ``model_final.pth``, ``eval.json``, ``model_averaged.pth``, its
evaluation and ``predictions.png``), IDENTICAL or DIFFERENT to the uninterrupted run.

    python bench/kill_soak.py                     # 10-5 (3 steps), 24 kills
    python bench/kill_soak.py --kills 3 --scenario 15-5 --root /tmp/soak

How the kills are placed: the uninterrupted run records every pass through the places a kill is
meant to hit (each training iteration, each atomic write, each evaluated image, the COCO
evaluation, the averaging hook, the set-up of each step); the soak draws its points from that record,
in turn from each category (training, checkpoint save, evaluation, averaging hook, result/plot
write, step transition), and each rerun kills itself with SIGKILL at the next point: inside an
atomic write, once half of the file is in its temporary file; elsewhere at the point, or a random
delay after it in training and evaluation (then the landing is the last place passed). A run
that reaches no point finishes and ends the soak. Every process is single-threaded
(``OMP_NUM_THREADS 1``) and started with the same command line.
"""

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTANT = os.path.join(REPO_ROOT, "configs", "quick_schedules", "synthetic_instant_test.yaml")
CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "dynamic_ykd.yaml")
METHOD = "dynamic_ykd"
KILL_ENV, TRACE_ENV, LANDINGS_ENV = "YKD_SOAK_KILL", "YKD_SOAK_TRACE", "YKD_SOAK_LANDINGS"
CATEGORIES = (
    "training",
    "checkpoint save",
    "evaluation",
    "averaging hook",
    "result/plot write",
    "step transition",
)
_CHECKPOINT = re.compile(r"(^|/)(model_\d{7}\.pth|model_final\.pth|last_checkpoint(@.*)?)$")


def category(site: str) -> str:
    """The category of a place ``site`` of the record (e.g. ``write:step1/model_final.pth``)."""
    kind, _, where = site.partition(":")
    if kind == "train":
        return "training"
    if kind == "average" or "averaged" in where:
        return "averaging hook"
    if kind == "transition" or where.endswith("config.yaml"):
        return "step transition"
    if kind == "eval" or where.endswith("eval.json"):
        return "evaluation"
    if _CHECKPOINT.search(where):
        return "checkpoint save"
    return "result/plot write"


def instant_opts() -> list[str]:
    """The instant schedule as command-line opts, to lay over the method's config."""
    from ykd.engine.setup import config_file_opts  # the controller imports ykd only here

    return config_file_opts(INSTANT)


def command(root: str, scenario: str) -> list[str]:
    """The command of every run of the soak: the whole scenario (``--all-steps``)."""
    opts = instant_opts() + ["MODEL.YKD.AVERAGING.ALPHA", "0.5"]
    opts += ["SYNTHETIC.ROOT", os.path.join(os.path.dirname(root), "data")]
    opts += ["CONTINUAL.OUTPUT_ROOT", os.path.join(root, "out")]
    argv = ["--config-file", CONFIG, "--scenario", scenario, "--all-steps", *opts]
    return [sys.executable, os.path.abspath(__file__), "--child", root, "--", *argv]


# ---- inside a run: the places of the record and the kill ------------------------------------


class Failpoints:
    """The places a run passes (recorded with ``YKD_SOAK_TRACE``) and the one it dies at
    (``YKD_SOAK_KILL``: ``{"site": ..., "delay": seconds}``), named relative to the method's
    folder, step 0's shared folder as ``step0``."""

    def __init__(self, method_dir: str, output_root: str):
        self.method_dir = method_dir
        self.output_root = os.path.abspath(output_root)
        self.kill = json.loads(os.environ.get(KILL_ENV, "null"))
        self.trace = os.environ.get(TRACE_ENV)
        self.landings = os.environ.get(LANDINGS_ENV)
        self.last = "start"
        self.last_write = ""

    def name(self, path: str) -> str:
        relative = os.path.relpath(os.path.abspath(path), self.method_dir)
        return re.sub(r"^\.\./\.\./shared_step0/[0-9a-f]+", "step0", relative)

    def pass_(self, site: str) -> bool:
        """Record ``site``; True when the run must die inside it (an atomic write)."""
        self.last = site
        if self.trace:
            with open(self.trace, "a") as f:
                f.write(json.dumps(site) + "\n")
        if not self.kill or self.kill["site"] != site:
            return False
        if site.startswith("write:"):
            return True
        if self.kill["delay"] == 0:
            self.die(site)
        timer = threading.Timer(self.kill["delay"], self.die)
        timer.daemon = True
        timer.start()
        return False

    def die(self, landed: str | None = None) -> None:
        if landed is None:
            landed = f"{self.last} (+{self.kill['delay']:.3f} s after {self.kill['site']})"
        if self.landings:
            with open(self.landings, "a") as f:
                f.write(json.dumps({"point": self.kill, "landed": landed}) + "\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _install(points: Failpoints, train_net) -> None:
    from ykd.engine.step_averaging import StepAveraging
    from ykd.engine.trainer import ContinualTrainer
    from ykd.evaluation import ContinualEvaluator
    from ykd.utils import atomic

    clean_write = atomic.atomic_write

    def atomic_write(path, write, *, binary=False):
        if not os.path.abspath(path).startswith(points.output_root + os.sep):
            return clean_write(path, write, binary=binary)  # e.g. the synthetic data
        name = points.name(path)
        if os.path.basename(path) == "last_checkpoint":
            name += f"@{points.last_write}"  # which checkpoint it points at
        points.last_write = os.path.basename(path)
        if not points.pass_(f"write:{name}"):
            return clean_write(path, write, binary=binary)

        def half_then_die(f):
            write(f)
            f.flush()
            f.truncate(f.tell() // 2)
            f.flush()
            points.die(f"write:{name} (half of it in its temporary file)")

        return clean_write(path, half_then_die, binary=binary)

    for module in list(sys.modules.values()):  # the modules that imported it by name too
        if getattr(module, "__name__", "").startswith("ykd") and hasattr(module, "atomic_write"):
            if module.atomic_write is clean_write:
                module.atomic_write = atomic_write
    wrap = [
        (
            ContinualTrainer,
            "run_step",
            lambda t, *a: f"train:step{t.cfg.CONTINUAL.STEP}:iter{t.iter}",
        ),
        (StepAveraging, "after_train", lambda h, *a: f"average:step{h.cfg.CONTINUAL.STEP}"),
        (
            ContinualEvaluator,
            "process",
            lambda e, *a: f"eval:{points.name(e._output_dir)}:image{len(e._predictions)}",
        ),
        (ContinualEvaluator, "evaluate", lambda e, *a: f"eval:{points.name(e._output_dir)}:coco"),
        (train_net, "setup_scenario_step", lambda args, step: f"transition:step{step}"),
    ]
    for owner, attribute, site in wrap:
        clean = getattr(owner, attribute)

        def wrapper(*args, _clean=clean, _site=site, **kwargs):
            points.pass_(_site(*args))
            return _clean(*args, **kwargs)

        setattr(owner, attribute, wrapper)


def child(root: str, argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location(
        "train_net", os.path.join(REPO_ROOT, "tools", "train_net.py")
    )
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    scenario = argv[argv.index("--scenario") + 1]
    method_dir = os.path.join(root, "out", "synthetic", scenario, METHOD)
    _install(Failpoints(method_dir, os.path.join(root, "out")), train_net)
    train_net.cli(argv)


# ---- the soak --------------------------------------------------------------------------------


def run(root: str, scenario: str, timeout: float, **env) -> int:
    """One run of the command; its exit code (-9: killed)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    full_env.update({key: value for key, value in env.items() if value is not None})
    log = os.path.join(os.path.dirname(root), f"{os.path.basename(root)}.log")
    with open(log, "a") as out:
        process = subprocess.run(
            command(root, scenario), env=full_env, stdout=out, stderr=out, timeout=timeout
        )
    if process.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"A run failed with exit code {process.returncode}: see {log}")
    return process.returncode


def draw_points(trace: list[str], kills: int, rng: random.Random) -> list[dict]:
    """``kills`` distinct places of the record, taken in turn from each category (random within
    it), in the order the run passes them; a random delay in training and evaluation."""
    by_category = {name: [] for name in CATEGORIES}
    for index, site in enumerate(trace):
        by_category[category(site)].append(index)
    chosen = set()
    for turn in range(kills):
        pool = [i for i in by_category[CATEGORIES[turn % len(CATEGORIES)]] if i not in chosen]
        pool = pool or [i for i in range(len(trace)) if i not in chosen]
        if pool:
            chosen.add(rng.choice(pool))
    points = []
    for index in sorted(chosen):
        site = trace[index]
        delayed = site.startswith(("train:", "eval:")) and rng.random() < 0.5
        points.append({"site": site, "delay": round(rng.uniform(0.0, 0.3), 3) if delayed else 0})
    return points


def compare(straight: str, soaked: str, scenario: str, num_steps: int) -> dict[str, str]:
    """IDENTICAL / DIFFERENT (with the differing entries) / MISSING per artefact."""
    import torch

    method = os.path.join("out", "synthetic", scenario, METHOD)
    artefacts = {"results.json": os.path.join(method, "results.json")}
    for step in range(num_steps):
        folder = os.path.join(method, f"step{step}")
        for name in ("model_final.pth", "eval.json", "predictions.png"):
            artefacts[f"step{step}/{name}"] = os.path.join(folder, name)
        if step:
            for name in ("model_averaged.pth", "eval_model_averaged/eval.json"):
                artefacts[f"step{step}/{name}"] = os.path.join(folder, name)
    verdicts = {}
    for label, relative in artefacts.items():
        a, b = os.path.join(straight, relative), os.path.join(soaked, relative)
        if not (os.path.exists(a) and os.path.exists(b)):
            missing = [
                name for name, p in (("uninterrupted", a), ("soaked", b)) if not os.path.exists(p)
            ]
            verdicts[label] = f"MISSING (in the {' and '.join(missing)} run)"
            continue
        if relative.endswith(".pth"):
            x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
            differing = [k for k in x["model"] if not torch.equal(x["model"][k], y["model"][k])]
            differing += [k for k in ("iteration",) if x.get(k) != y.get(k)]
        elif relative.endswith(".json"):
            with open(a) as fa, open(b) as fb:
                x, y = json.load(fa), json.load(fb)
            differing = [] if x == y else ["values"]
        else:
            with open(a, "rb") as fa, open(b, "rb") as fb:
                differing = [] if fa.read() == fb.read() else ["bytes"]
        verdicts[label] = (
            "IDENTICAL" if not differing else f"DIFFERENT ({', '.join(differing[:5])})"
        )
    return verdicts


def leftover_temporary_files(root: str) -> list[str]:
    return [
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith(".tmp")
    ]


def soak(
    root: str, scenario: str, kills: int, seed: int, timeout: float, reuse: bool = False
) -> dict:
    """
    Run the soak under ``root``; return its record (also written to ``<root>/kill_soak.json``).
    With ``reuse``, the uninterrupted run of an earlier soak of the same scenario in ``root`` (its
    folder and record) is kept instead of being run again.
    """
    os.makedirs(root, exist_ok=True)
    straight, soaked = os.path.join(root, "straight"), os.path.join(root, "soaked")
    trace_path, landings_path = (os.path.join(root, n) for n in ("trace.jsonl", "landings.jsonl"))
    finished = os.path.join(straight, "out", "synthetic", scenario, METHOD, "results.json")
    reuse = reuse and os.path.exists(finished) and os.path.exists(trace_path)
    # The synthetic data (<root>/data) is kept.
    for folder in (soaked,) if reuse else (straight, soaked):
        shutil.rmtree(folder, ignore_errors=True)
    for path in (landings_path,) if reuse else (trace_path, landings_path):
        if os.path.exists(path):
            os.unlink(path)
    start = time.perf_counter()
    if not reuse:
        run(straight, scenario, timeout, **{TRACE_ENV: trace_path})
    with open(trace_path) as f:
        trace = [json.loads(line) for line in f]
    straight_s = time.perf_counter() - start
    points = draw_points(trace, kills, random.Random(seed))
    runs, killed = 0, 0
    for point in points:
        runs += 1
        code = run(
            soaked, scenario, timeout, **{KILL_ENV: json.dumps(point), LANDINGS_ENV: landings_path}
        )
        if code == 0:
            break  # the run finished before reaching the point
        killed += 1
    else:
        runs += 1
        run(soaked, scenario, timeout)
    with open(landings_path) as f:
        landings = [json.loads(line) for line in f] if killed else []
    num_steps = 1 + max(int(s.split(":")[1][4:]) for s in trace if s.startswith("transition:"))
    record = {
        "scenario": scenario,
        "method": METHOD,
        "seed": seed,
        "kills": killed,
        "runs": runs,
        "points_drawn": len(points),
        "uninterrupted_s": None if reuse else round(straight_s, 1),
        "landings": [
            dict(entry, category=category(entry["landed"].split(" ")[0])) for entry in landings
        ],
        "artefacts": compare(straight, soaked, scenario, num_steps),
        "leftover_temporary_files": leftover_temporary_files(os.path.join(soaked, "out")),
    }
    with open(os.path.join(root, "kill_soak.json"), "w") as f:
        json.dump(record, f, indent=2)
    return record


def report(record: dict) -> str:
    lines = [
        f"Kill soak, synthetic {record['scenario']}, {record['method']} (averaging hook, VIS on):"
        f" {record['kills']} kills (SIGKILL) in {record['runs']} runs of the same command",
        "where the kills landed:",
    ]
    counts = {name: 0 for name in CATEGORIES}
    for entry in record["landings"]:
        counts[entry["category"]] += 1
        lines.append(f"  [{entry['category']}] {entry['landed']}")
    lines.append("per category: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    lines.append("artefacts against the uninterrupted run:")
    lines += [f"  {label}: {verdict}" for label, verdict in record["artefacts"].items()]
    leftovers = record["leftover_temporary_files"]
    lines.append(
        f"temporary files left at the end: {len(leftovers)} {leftovers if leftovers else ''}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(REPO_ROOT, "output", "kill_soak"))
    parser.add_argument("--scenario", default="10-5", help="a synthetic scenario (10-5: 3 steps)")
    parser.add_argument("--kills", type=int, default=24, help="kill points to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the uninterrupted run of an earlier soak in --root",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        child(args.child, rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    root = os.path.abspath(args.root)
    record = soak(root, args.scenario, args.kills, args.seed, args.timeout, reuse=args.reuse)
    print(report(record))
    return 0 if all(v == "IDENTICAL" for v in record["artefacts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
