"""The synthetic benchmark's schedules, commands and iteration times (bench/scenarios.py)."""

from tests.conftest import load_tool

scenarios = load_tool("scenarios", folder="bench")


def _incremental(opts):
    return opts[opts.index("CONTINUAL.INCREMENTAL_OPTS") + 1]


def test_one_class_steps_get_a_third_of_the_iterations():
    assert "'SOLVER.MAX_ITER', '150'" in _incremental(scenarios.schedule("15-5", "ft"))
    assert "'SOLVER.MAX_ITER', '50'" in _incremental(scenarios.schedule("15-1", "dynamic_ykd"))
    assert "'SOLVER.MAX_ITER', '50'" in _incremental(scenarios.schedule("19-1", "mma"))


def test_joint_keeps_the_step0_schedule_and_runs_its_last_step():
    opts = scenarios.schedule("15-1", "joint")
    assert "CONTINUAL.INCREMENTAL_OPTS" not in opts
    assert opts[opts.index("SOLVER.MAX_ITER") + 1] == "450"
    command = scenarios.method_command("joint", "15-1", "out", [])
    assert command[command.index("--step") + 1] == "5" and "--resume" in command
    assert "--all-steps" in scenarios.method_command("ilod", "15-1", "out", [])
