import importlib.util
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name: str, folder: str = "tools"):
    """Import ``<folder>/<name>.py`` (tools and benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, folder, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO_ROOT
