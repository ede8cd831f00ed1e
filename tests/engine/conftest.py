import os

from tests.conftest import REPO_ROOT
from ykd.engine.setup import config_file_opts

INSTANT_CONFIG = os.path.join(
    REPO_ROOT, "configs", "quick_schedules", "synthetic_instant_test.yaml"
)


def instant_opts(root) -> list[str]:
    """The CI quick schedule as command-line opts, to lay over any method's config, writing under
    ``root``."""
    opts = config_file_opts(INSTANT_CONFIG)
    opts += ["SYNTHETIC.ROOT", os.path.join(root, "data")]
    return opts + ["CONTINUAL.OUTPUT_ROOT", os.path.join(root, "out")]
