"""Fail early and loudly when the Detectron2 install is broken: import every module we use."""

import ast
import importlib
import os

import pytest

from tests.conftest import REPO_ROOT


def _detectron2_modules_used(root: str = REPO_ROOT) -> list[str]:
    """Every ``detectron2...`` module imported by ``root``'s ykd/, tools/ and bench/ (from source)."""
    modules = set()
    for folder in ("ykd", "tools", "bench"):
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for file in files:
                if not file.endswith(".py"):
                    continue
                with open(os.path.join(dirpath, file)) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and node.level == 0:
                        if (node.module or "").split(".")[0] == "detectron2":
                            modules.add(node.module)
                    elif isinstance(node, ast.Import):
                        modules.update(
                            a.name for a in node.names if a.name.split(".")[0] == "detectron2"
                        )
    return sorted(modules)


def test_scan_finds_absolute_detectron2_imports_only(tmp_path):
    (tmp_path / "ykd" / "sub").mkdir(parents=True)
    (tmp_path / "tools").mkdir()
    (tmp_path / "ykd" / "a.py").write_text(
        "from detectron2.engine import HookBase\nimport detectron2.utils.comm as comm, os\n"
    )
    (tmp_path / "ykd" / "sub" / "b.py").write_text(
        "def f():\n    from detectron2.config import configurable\nfrom .detectron2 import x\n"
    )
    (tmp_path / "tools" / "c.py").write_text("import detectron2_extra\nimport detectron2\n")
    (tmp_path / "ykd" / "d.txt").write_text("from detectron2.data import x\n")
    assert _detectron2_modules_used(str(tmp_path)) == [
        "detectron2",
        "detectron2.config",
        "detectron2.engine",
        "detectron2.utils.comm",
    ]


@pytest.mark.parametrize("module", _detectron2_modules_used())
def test_detectron2_module_imports(module):
    importlib.import_module(module)
