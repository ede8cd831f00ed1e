"""Dynamic Y-KD for Detectron2. Importing the package registers its modules with Detectron2."""

from . import data, modeling  # noqa: F401  (registration of datasets, backbones and models)
