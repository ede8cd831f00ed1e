"""Dynamic Y-KD for Detectron2. Importing the package registers its modules with Detectron2."""

from .utils.warnings import upstream_warnings_hidden

with upstream_warnings_hidden():  # Detectron2's and fvcore's known warnings at import
    from . import data, modeling  # noqa: F401  (registration of datasets, backbones and models)
