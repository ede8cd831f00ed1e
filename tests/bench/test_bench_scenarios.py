"""The synthetic benchmark (bench/scenarios.py): its plan, seeds, class orders and tables."""

import argparse
import json
import os
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, load_tool
from tests.engine.conftest import instant_opts

sys.path.insert(0, REPO_ROOT)
scenarios = load_tool("scenarios", folder="bench")
from bench import seed_tables  # noqa: E402


def _plan(seeds=3, orders=1, methods=scenarios.METHODS):
    class Args:
        pass

    args = Args()
    args.scenarios, args.methods, args.seeds, args.class_orders = (
        scenarios.SCENARIOS,
        methods,
        seeds,
        orders,
    )
    return [run for group in scenarios.plan(args) for run in group]


def test_step0_is_planned_once_per_set_of_step0_classes():
    runs = _plan()
    step0 = [(r.scenario, r.order) for r in runs if r.kind == "step0"]
    assert step0 == [("15-5", 0), ("19-1", 0), ("10-10", 0)]  # 15-1 shares 15-5's
    assert [r.scenario for r in runs if r.kind == "joint"] == [scenarios.JOINT_SCENARIO]
    # Each step 0 comes before the methods of its scenario; joint comes first.
    kinds = [(r.kind, r.scenario) for r in runs]
    assert kinds[0] == ("joint", scenarios.JOINT_SCENARIO)
    for scenario in ("15-5", "19-1", "10-10"):
        first_method = kinds.index(("method", scenario))
        assert kinds.index(("step0", scenario)) < first_method


def test_seeded_methods_get_the_seeds_and_the_others_one():
    methods = [r for r in _plan(seeds=3) if r.kind == "method"]
    for scenario in scenarios.SCENARIOS:
        runs = [r for r in methods if r.scenario == scenario]
        for method in scenarios.METHODS:
            seeds = [r.seed for r in runs if r.method == method]
            if method == "joint":
                assert seeds == []
            elif method in scenarios.SEEDED_METHODS:
                assert seeds == [0, 1, 2]
            else:
                assert seeds == [0]


def test_class_orders_have_their_own_roots_and_orders():
    runs = _plan(seeds=1, orders=2, methods=["ft", "joint"])
    assert {r.order for r in runs} == {0, 1}
    assert scenarios.base_opts("out", 0, []) == [
        "CONTINUAL.OUTPUT_ROOT",
        "out",
        "CONTINUAL.VIS_NUM_IMAGES",
        "0",
    ]
    opts = scenarios.base_opts("out", 1, [])
    assert opts[opts.index("CONTINUAL.OUTPUT_ROOT") + 1] == os.path.join("out", "order1")
    assert opts[opts.index("CONTINUAL.CLASS_ORDER_SEED") + 1] == "1"


def test_mean_and_sample_std():
    stats = seed_tables.mean_std([1.0, 2.0, 4.0])
    assert stats["mean"] == pytest.approx(7 / 3)
    assert stats["std"] == pytest.approx(
        (((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2) ** 0.5
    )
    assert seed_tables.mean_std([3.0])["std"] is None
    assert seed_tables.fmt(stats) == "2.3 ± 1.5"


def test_the_tables_leave_out_runs_of_other_methods(tmp_path):
    for method, value in (("ft", 10.0), ("dynamic_ykd_trunk_frozen", 60.0)):
        folder = tmp_path / "synthetic" / "10-10" / f"{method}_seed0"
        folder.mkdir(parents=True)
        last = {
            "step": 1,
            "segm": {"old/AP": value, "new/AP": value, "all/AP": value},
            "bbox": {"all/AP": value},
            "forgetting": {},
        }
        record = {"dataset": "synthetic", "scenario": "10-10", "method": method}
        record.update(tasks=[[0], [1]], steps=[last], incremental_seed=0)
        (folder / "results.json").write_text(json.dumps(record))
    args = argparse.Namespace(
        results_dir=str(tmp_path / "results"),
        seeds=1,
        class_orders=1,
        jobs=1,
        output_root=str(tmp_path),
        opts=[],
    )
    os.makedirs(args.results_dir)
    table = seed_tables.write_scenario_results("10-10", str(tmp_path), 0, args, ["ft", "joint"])
    assert list(table) == ["ft"] and table["ft"]["mask AP all"]["mean"] == 10.0


def test_seeds_and_class_orders_end_to_end(tmp_path, capsys):
    opts = instant_opts(str(tmp_path))
    while "CONTINUAL.OUTPUT_ROOT" in opts:
        index = opts.index("CONTINUAL.OUTPUT_ROOT")
        del opts[index : index + 2]
    results = tmp_path / "results"
    argv = [
        "--scenarios",
        "10-10",
        "--methods",
        "ft",
        "joint",
        "--seeds",
        "2",
        "--class-orders",
        "2",
    ]
    argv += ["--output-root", str(tmp_path / "out"), "--results-dir", str(results), "--jobs", "2"]
    scenarios.main(argv + opts)
    for stem in ("synthetic_10-10", "synthetic_10-10_order1"):
        record = json.loads((results / f"{stem}.json").read_text())
        # The record names what its figures depend on: the shared step 0, the data, the machine.
        assert len(record["step0 mask AP"]) == 1
        assert set(record["data"]) == {"train.json", "val.json"}
        assert record["environment"]["torch"] == torch.__version__
        assert record["environment"]["cores"] == os.cpu_count()
        table = record["methods"]
        assert table["ft"]["seeds"] == [0, 1] and table["joint"]["seeds"] == [-1]
        assert table["ft"]["mask AP all"]["n"] == 2
        assert (results / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    orders = [
        json.loads(
            (
                tmp_path / "out" / root / "synthetic" / "10-10" / "ft_seed0" / "results.json"
            ).read_text()
        )["class_order"]
        for root in ("", "order1")
    ]
    assert orders[0] != orders[1]
    # A rerun trains nothing.
    capsys.readouterr()
    scenarios.main(argv + opts)
    assert "0 of 8 runs to train" in capsys.readouterr().out


def test_a_failed_run_is_reported_and_the_benchmark_goes_on(monkeypatch, capsys, tmp_path):
    trained, written = [], []

    def execute(run, args, threads):
        if run.method == "ilod" or (run.scenario == "19-1" and run.kind == "step0"):
            raise scenarios.RunFailed(f"{run.name}: exit status 1, log {run.name}.log")
        trained.append(run.name)
        return 0.5

    monkeypatch.setattr(scenarios, "execute", execute)
    monkeypatch.setattr(scenarios, "finished", lambda run, args: False)
    monkeypatch.setattr(scenarios, "cost", lambda run, args: 1.0)
    monkeypatch.setattr(scenarios, "write_results", lambda scenario, *_: written.append(scenario))
    argv = ["--scenarios", "15-5", "19-1", "--methods", "ft", "ilod", "--seeds", "1"]
    with pytest.raises(SystemExit) as exit_info:
        scenarios.main(argv + ["--output-root", str(tmp_path), "--jobs", "1"])
    # 15-5 goes on past ILOD's failure; 19-1's methods are not run without their step 0.
    assert trained == ["order 0 15-5 ft", "order 0 15-5 ft seed 0"]
    assert written == ["15-5"]
    message = str(exit_info.value.code)
    assert message.startswith("4 runs failed")
    assert "order 0 15-5 ilod seed 0: exit status 1" in message
    assert "order 0 19-1 ilod seed 0: not run, its step 0 failed" in message
    out = capsys.readouterr().out
    assert "[3/6] order 0 15-5 ilod seed 0: FAILED (order 0 15-5 ilod seed 0: exit status 1" in out
    assert "order 0 19-1 ft seed 0: not run (its step 0 failed)" in out


def test_the_eta_costs_follow_the_configs_schedules(tmp_path):
    class Args:
        output_root, opts = str(tmp_path), []

    run = scenarios.Run("method", "15-1", "dynamic_ykd", 0, 0)
    evaluation = scenarios.EVALUATION_COST
    assert scenarios.cost(run, Args) == 5 * (100 * 1.8 + evaluation)
    assert scenarios.cost(scenarios.Run("method", "15-5", "ft", 0, 0), Args) == 400 + evaluation
    assert scenarios.cost(scenarios.Run("step0", "15-5", "ft", 0, 0), Args) == 2700 + evaluation
    Args.opts = ["SOLVER.MAX_ITER", "900"]
    assert scenarios.cost(scenarios.Run("step0", "15-5", "ft", 0, 0), Args) == 900 + evaluation
