"""The demo's joint-training reference, read from the committed benchmark results (tools/demo.py)."""

import json

from tests.conftest import load_tool

demo = load_tool("demo")


def _run_folder(tmp_path, all_ap):
    folder = tmp_path / "dynamic_ykd"
    folder.mkdir()
    record = {"steps": [{"step": 1, "segm": {"all/AP": all_ap}}]}
    (folder / "results.json").write_text(json.dumps(record))
    return str(tmp_path)


def test_the_ratio_to_the_committed_joint_run(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    table = {"methods": {"joint": {"mask AP all": {"mean": 80.0, "std": None}}}}
    (results / "synthetic_15-5.json").write_text(json.dumps(table))
    monkeypatch.setattr(demo, "BENCH_RESULTS", str(results))
    line = demo.joint_reference("15-5", _run_folder(tmp_path, 60.0))
    assert "mask AP all 80.0" in line and "/ joint = 0.750" in line and "not run here" in line


def test_no_reference_without_benchmark_results(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "BENCH_RESULTS", str(tmp_path / "none"))
    line = demo.joint_reference("15-5", _run_folder(tmp_path, 60.0))
    assert line.startswith("No joint reference")
