"""tools/compare.py as a command: a missing results folder, or results of several scenarios, is a
one-line error with status 2."""

import json

import pytest

from tests.conftest import load_tool

tool = load_tool("compare")


def test_no_results_exits_2_with_the_message_alone(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        tool.cli([str(tmp_path), "--output", str(tmp_path / "cmp")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("No results.json in") and err.count("\n") == 1
    with pytest.raises(FileNotFoundError, match="No results.json"):
        tool.cli([str(tmp_path), "--output", str(tmp_path / "cmp"), "--debug"])


def test_results_of_two_scenarios_exit_2_with_the_message_alone(tmp_path, capsys):
    folders = []
    for scenario in ("15-5", "19-1"):
        folder = tmp_path / scenario / "ft"
        folder.mkdir(parents=True)
        record = {"dataset": "synthetic", "scenario": scenario, "method": "ft", "steps": []}
        (folder / "results.json").write_text(json.dumps(record))
        folders.append(str(folder))
    with pytest.raises(SystemExit) as exit:
        tool.cli(folders + ["--output", str(tmp_path / "cmp")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Results of different scenarios") and err.count("\n") == 1
    assert not (tmp_path / "cmp").exists()
