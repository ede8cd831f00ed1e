import os

import yaml

from tests.conftest import REPO_ROOT

INSTANT_CONFIG = os.path.join(
    REPO_ROOT, "configs", "quick_schedules", "synthetic_instant_test.yaml"
)


def instant_opts(root) -> list[str]:
    """The CI quick schedule as command-line opts, to lay over any method's config, writing under
    ``root``."""
    with open(INSTANT_CONFIG) as f:
        tree = yaml.safe_load(f)
    tree.pop("_BASE_")

    def flatten(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", str(value)

    opts = [item for pair in flatten(tree) for item in pair]
    opts += ["SYNTHETIC.ROOT", os.path.join(root, "data")]
    return opts + ["CONTINUAL.OUTPUT_ROOT", os.path.join(root, "out")]
