"""A minimal decorator registry and the registry of KD losses (torch-only, no fvcore)."""

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = [
    "Registry",
    "FEATURE_KD_REGISTRY",
    "KD_LOSS_REGISTRY",
    "build_feature_kd",
    "build_feature_kds_from_cfg",
    "build_kd_loss",
    "build_kd_loss_from_cfg",
]


class Registry:
    """
    A name -> object table filled with the :meth:`register` decorator.

    It offers the part of fvcore's ``Registry`` that `ykd.distillation` needs, so that the package depends
    on torch only.
    """

    def __init__(self, name: str) -> None:
        """
        Args:
            name: what is registered, used in error messages (e.g. "KD loss").
        """
        self._name = name
        self._obj_map: dict[str, Any] = {}

    def register(self, name: str | None = None) -> Callable[[_T], _T]:
        """
        Decorator registering a class or function under ``name`` (default: its ``__name__``).

        Raises:
            KeyError: if the name is already taken.
        """

        def deco(obj: _T) -> _T:
            key = name or obj.__name__
            if key in self._obj_map:
                raise KeyError(f"{self._name} {key!r} is already registered")
            self._obj_map[key] = obj
            return obj

        return deco

    def get(self, name: str) -> Any:
        """
        Return the object registered under ``name``.

        Raises:
            KeyError: a one-line message listing the registered names when ``name`` is unknown.
        """
        if name not in self._obj_map:
            raise KeyError(f"Unknown {self._name} {name!r}; registered: {', '.join(self.names())}")
        return self._obj_map[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._obj_map)

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._obj_map)


KD_LOSS_REGISTRY = Registry("KD loss")
KD_LOSS_REGISTRY.__doc__ = """
Registry of logit distillation losses for classification heads.

A registered object is an ``nn.Module`` class built with keyword options (``temperature``,
``reduction``, ``adapter`` and its own) and called as

    loss_fn(student_logits (R, Ks), teacher_logits (R, Kt), *, targets=None, num_rois_per_image=None)
        -> scalar tensor (or per-sample values with ``reduction="none"``)

It also has a classmethod ``from_config(kd_cls_node) -> dict`` giving those keyword options from the
``MODEL.YKD.KD_CLS`` config node.
"""


def build_kd_loss(name: str, **options: Any) -> Any:
    """
    Build the KD loss registered as ``name`` with keyword ``options``.

    Example: ``build_kd_loss("kl", temperature=2.0, adapter="fold")``.
    """
    return KD_LOSS_REGISTRY.get(name)(**options)


def build_kd_loss_from_cfg(kd_cls_node: Any) -> Any:
    """
    Build the KD loss described by a config node (``cfg.MODEL.YKD.KD_CLS``).

    Args:
        kd_cls_node: a mapping (e.g. a yacs ``CfgNode``) with at least ``NAME``; the other keys the loss
            reads are listed in its ``from_config``.
    """
    loss_cls = KD_LOSS_REGISTRY.get(kd_cls_node["NAME"])
    return loss_cls(**loss_cls.from_config(kd_cls_node))


FEATURE_KD_REGISTRY = Registry("feature distiller")
FEATURE_KD_REGISTRY.__doc__ = """
Registry of feature-level distillers: modules, possibly with parameters of their own, that compare
hidden features of a frozen teacher and of a student (the trunk's outputs, or the box head's output
on the distillation boxes).

A registered object is a :class:`~ykd.distillation.feature_kd.FeatureDistiller` subclass: it names
its config node under ``MODEL.YKD`` (``config_node``), decides from it whether it is on
(``enabled(node)``), gives its keyword options (``from_config(node, *, student_dim, teacher_dim)``)
and computes its weighted losses from a
:class:`~ykd.distillation.feature_kd.FeatureKDInputs` (``distil(inputs) -> dict[str, scalar]``).
"""


def build_feature_kd(name: str, **options: Any) -> Any:
    """Build the feature distiller registered as ``name`` with keyword ``options``."""
    return FEATURE_KD_REGISTRY.get(name)(**options)


def build_feature_kds_from_cfg(
    ykd_node: Any, names: Sequence[str], *, student_dim: int, teacher_dim: int
) -> dict[str, Any]:
    """
    The feature distillers of ``names`` that their own config node enables, built from it.

    Args:
        ykd_node: the ``MODEL.YKD`` node holding each distiller's ``config_node``.
        names: registered names (``MODEL.YKD.FEATURE_KD.NAMES``).
        student_dim, teacher_dim: Ds and Dt, the widths of the box predictors' inputs.

    Returns:
        name -> built distiller, in the order of ``names``; the disabled ones are left out.
    """
    built = {}
    for name in names:
        distiller_cls = FEATURE_KD_REGISTRY.get(name)
        node = ykd_node[distiller_cls.config_node]
        if distiller_cls.enabled(node):
            built[name] = distiller_cls(
                **distiller_cls.from_config(node, student_dim=student_dim, teacher_dim=teacher_dim)
            )
    return built
