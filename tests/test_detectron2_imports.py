"""Fail early and loudly when the Detectron2 install is broken: import every module we use."""

import ast
import importlib
import os

import pytest

from tests.conftest import REPO_ROOT


def _detectron2_modules_used() -> list[str]:
    """Every ``detectron2...`` module imported by ykd/, tools/ and bench/ (read from the source)."""
    modules = set()
    for folder in ("ykd", "tools", "bench"):
        for dirpath, _, files in os.walk(os.path.join(REPO_ROOT, folder)):
            for file in files:
                if not file.endswith(".py"):
                    continue
                with open(os.path.join(dirpath, file)) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "detectron2"
                    ):
                        modules.add(node.module)
                    elif isinstance(node, ast.Import):
                        modules.update(
                            a.name for a in node.names if a.name.startswith("detectron2")
                        )
    return sorted(modules)


def test_project_uses_detectron2():
    assert "detectron2.engine" in _detectron2_modules_used()


@pytest.mark.parametrize("module", _detectron2_modules_used())
def test_detectron2_module_imports(module):
    importlib.import_module(module)


def test_detectron2_version_and_install_layout():
    import detectron2

    major, minor = (int(x) for x in detectron2.__version__.split(".")[:2])
    assert (major, minor) >= (0, 6)
    assert importlib.util.find_spec("detectron2.model_zoo") is not None
