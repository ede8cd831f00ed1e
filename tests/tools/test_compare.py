"""tools/compare.py as a command: a missing results folder is a one-line error with status 2."""

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
