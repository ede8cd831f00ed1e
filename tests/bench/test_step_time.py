"""The cost benchmark of Y-KD (bench/step_time.py, bench/component_times.py) on tiny runs."""

import itertools
import json
from types import SimpleNamespace

import pytest

from bench import component_times, step_time


class _Clock:
    """perf_counter stand-in: each reading advances by the next of ``steps``."""

    def __init__(self, steps):
        self.now, self.steps = 0.0, iter(steps)

    def __call__(self):
        self.now += next(self.steps)
        return self.now


def test_nested_components_count_exclusive_time(monkeypatch):
    calls = []
    inner = SimpleNamespace(run=lambda: calls.append("inner"))

    def outer_run():
        calls.append("outer")
        inner.run()

    outer = SimpleNamespace(run=outer_run)
    # Readings: enter outer (t=1), enter inner (t=3), leave inner (t=7), leave outer (t=8).
    monkeypatch.setattr(component_times.time, "perf_counter", _Clock([1, 2, 4, 1]))
    timer = component_times.ComponentTimer()
    with timer.wrapping([("outer", outer, "run"), ("inner", inner, "run"), ("none", None, "x")]):
        outer.run()
    assert calls == ["outer", "inner"]
    assert timer.seconds == {"outer": 2 + 1, "inner": 4}
    inner.run()  # the original method again: no timing
    assert timer.seconds == {"outer": 3, "inner": 4}


def test_wrapping_restores_module_methods(make_cfg):
    from detectron2.modeling import build_model

    model = build_model(make_cfg(classes_per_task=[3, 2]))
    components = component_times.training_components(model)
    assert {name for name, _, _ in components} >= {"trunk", "RPN", "box heads", "mask head"}
    with component_times.ComponentTimer().wrapping(components):
        assert "forward" in vars(model.backbone)
    assert "forward" not in vars(model.backbone) and "_mask_losses" not in vars(model)


@pytest.fixture
def make_cfg():
    from tests.modeling.tiny_model import tiny_cfg

    return tiny_cfg


def test_one_iteration_per_configuration_prints_ratios_breakdown_and_memory(capsys, tmp_path):
    argv = ["--model", "slim", "--repeats", "1", "--batch", "1", "--write"]
    summaries = step_time.main(argv + ["--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "step_time_slim.json").read_text())
    assert record["summary"] == summaries[0] and record["command"].startswith("python bench/")
    assert set(record["memory_mib"]) == set(step_time.TRAIN_METHODS)
    assert summaries[0] in (tmp_path / "step_time_slim.md").read_text()
    (summary,) = summaries
    assert summary.startswith("slim: y-kd/ft=") and "infer4/infer1=" in summary
    for method in step_time.TRAIN_METHODS:
        assert f"train  {method}" in out and f"memory {method}" in out
    breakdown = [line for line in out.splitlines() if line.startswith("  ")]
    assert any(line.split()[0] == "trunk" for line in breakdown)
    assert any(line.strip().startswith("KD: teacher") for line in breakdown)
    peaks = [
        float(line.split("rss_peak_mib")[1].split()[0])
        for line in out.splitlines()
        if line.startswith("memory")
    ]
    assert len(peaks) == 4 and all(p > 0 for p in peaks)


def test_inference_task_splits():
    spec = step_time.MODELS["voc"]
    assert [step_time.inference_tasks(spec, n) for n in (1, 4)] == [[15], [15, 1, 1, 1]]
    assert all(sum(s.train_tasks) <= 80 for s in step_time.MODELS.values())
    assert list(itertools.islice(step_time.MODELS, 3)) == ["slim", "voc", "coco"]
