"""
The registered KD loss modules: thin wrappers that apply the class-space adapter, then a pure loss of
:mod:`ykd.distillation.functional` with the module's options (the detector losses ``ukd`` and ``l2``:
:mod:`ykd.distillation.detector_losses`).
"""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from . import functional as KF
from .adapters import ADAPTERS, adapt_class_space, adapt_targets
from .functional.common import REDUCTIONS
from .registry import KD_LOSS_REGISTRY

__all__ = ["KDLoss"]


class KDLoss(nn.Module):
    """
    Base of the registered KD losses.

    Call: ``loss(student_logits (R, Ks), teacher_logits (R, Kt), *, targets=None,
    num_rois_per_image=None)``. The student's logits (and ``targets``, given in the student's class
    space, bg = Ks - 1) go through the class-space adapter (:data:`~ykd.distillation.adapters.ADAPTERS`),
    then through :attr:`functional` with the temperature, the reduction and the loss's options.

    Subclasses set :attr:`functional`, and where needed :attr:`default_adapter`, :attr:`adapters`,
    :attr:`uses_targets`, :attr:`uses_groups`, an ``__init__`` storing their options in
    :attr:`options`, and a ``from_config`` reading them.
    """

    functional: ClassVar[Callable[..., Tensor]]
    default_adapter: ClassVar[str] = "fold"
    """Adapter used when none is given: MMA's "fold" by default."""
    adapters: ClassVar[tuple[str, ...]] = ADAPTERS
    """The adapters this loss accepts."""
    uses_targets: ClassVar[bool] = False
    """Whether the loss takes the ROIs' ground-truth classes (else ``targets`` is ignored)."""
    uses_groups: ClassVar[bool] = False
    """Whether the loss takes ``num_rois_per_image`` (else it is ignored)."""

    def __init__(
        self, *, temperature: float = 1.0, reduction: str = "mean", adapter: str = ""
    ) -> None:
        """
        Args:
            temperature: softmax temperature T > 0.
            reduction: "mean", "sum" or "none" (per-sample values).
            adapter: class-space adapter, one of :attr:`adapters`; "" for :attr:`default_adapter`.
        """
        super().__init__()
        name = type(self).__name__
        adapter = adapter or self.default_adapter
        if adapter not in self.adapters:
            raise ValueError(f"{name}: adapter must be one of {self.adapters}, got {adapter!r}")
        if not temperature > 0:
            raise ValueError(f"{name}: temperature must be > 0, got {temperature}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.temperature = float(temperature)
        self.reduction = reduction
        self.adapter = adapter
        self.options: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of ``__init__`` from the ``MODEL.YKD.KD_CLS`` node."""
        return {
            "temperature": cfg["TEMPERATURE"],
            "reduction": cfg["REDUCTION"],
            "adapter": cfg["ADAPTER"],
        }

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        *,
        targets: Tensor | None = None,
        num_rois_per_image: int | list[int] | None = None,
    ) -> Tensor:
        """
        Args:
            student_logits: (R, Ks) student logits, [old..., new..., bg].
            teacher_logits: (R, Kt) teacher logits, [old..., bg].
            targets: optional (R,) ground-truth classes in the student's space (bg = Ks - 1), for the
                losses that use them; without them they use the teacher's argmax.
            num_rois_per_image: ROIs of each image, consecutive in the rows (an int for equal counts),
                for the losses defined per image; None = one group.

        Returns:
            A scalar, or per-sample values with ``reduction="none"``.
        """
        num_teacher_classes = teacher_logits.shape[-1]
        student_logits = adapt_class_space(
            student_logits, num_teacher_classes, self.adapter, temperature=self.temperature
        )
        kwargs = dict(self.options)
        if self.uses_targets:
            if targets is not None:
                targets = adapt_targets(targets, num_teacher_classes, self.adapter)
            kwargs["targets"] = targets
        if self.uses_groups:
            kwargs["num_rois_per_image"] = num_rois_per_image
        return type(self).functional(
            student_logits,
            teacher_logits,
            temperature=self.temperature,
            reduction=self.reduction,
            **kwargs,
        )

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (
            f"temperature={self.temperature}, reduction={self.reduction!r}, "
            f"adapter={self.adapter!r}{options}"
        )


@KD_LOSS_REGISTRY.register("kl")
class KLLoss(KDLoss):
    """Forward KL with T² scaling (Hinton et al., 2015): :func:`~.functional.kl_loss`."""

    functional = staticmethod(KF.kl_loss)


@KD_LOSS_REGISTRY.register("rkl")
class ReverseKLLoss(KDLoss):
    """Reverse KL (mode-seeking): :func:`~.functional.rkl_loss`."""

    functional = staticmethod(KF.rkl_loss)


@KD_LOSS_REGISTRY.register("js")
class JSLoss(KDLoss):
    """Jensen-Shannon divergence: :func:`~.functional.js_loss`."""

    functional = staticmethod(KF.js_loss)


@KD_LOSS_REGISTRY.register("tv")
class TVLoss(KDLoss):
    """Total variation distance: :func:`~.functional.tv_loss`."""

    functional = staticmethod(KF.tv_loss)


class _SkewLoss(KDLoss):
    def __init__(self, *, skew: float = 0.1, **kwargs: Any) -> None:
        """
        Args:
            skew: skew λ in [0, 1] (DistiLLM's α, default 0.1).
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.options = {"skew": skew}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().from_config(cfg), "skew": cfg["SKEW"]["LAMBDA"]}


@KD_LOSS_REGISTRY.register("skew_kl")
class SkewKLLoss(_SkewLoss):
    """Skew KL (DistiLLM, Ko et al., ICML 2024): :func:`~.functional.skew_kl_loss`. Config: SKEW.LAMBDA."""

    functional = staticmethod(KF.skew_kl_loss)


@KD_LOSS_REGISTRY.register("skew_rkl")
class SkewReverseKLLoss(_SkewLoss):
    """Skew reverse KL (DistiLLM): :func:`~.functional.skew_rkl_loss`. Config: SKEW.LAMBDA."""

    functional = staticmethod(KF.skew_rkl_loss)


@KD_LOSS_REGISTRY.register("bdkd")
class BDKDLoss(KDLoss):
    """
    BD-KD (Amara et al., 2022): entropy-gap weighted forward/reverse KL, :func:`~.functional.bdkd_loss`.
    Config: BDKD.WEIGHTING, BDKD.GAP_SCALE.
    """

    functional = staticmethod(KF.bdkd_loss)

    def __init__(
        self,
        *,
        weighting: str | Callable[[Tensor], Tensor] = "hard",
        gap_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            weighting: "hard", "smooth" (see :data:`~.functional.BDKD_WEIGHTINGS`) or a callable.
            gap_scale: entropy gap (nats) counting as one unit for the weighting.
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.options = {"weighting": weighting, "gap_scale": gap_scale}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        node = cfg["BDKD"]
        return {
            **super().from_config(cfg),
            "weighting": node["WEIGHTING"],
            "gap_scale": node["GAP_SCALE"],
        }


@KD_LOSS_REGISTRY.register("sinkd")
class SinKDLoss(KDLoss):
    """
    SinKD (Cui et al., 2024): entropic optimal transport between the batch's teacher and student
    distributions, :func:`~.functional.sinkd_loss`. Config: SINKD.EPS, SINKD.ITERS, SINKD.KL_WEIGHT,
    SINKD.PER_IMAGE.
    """

    functional = staticmethod(KF.sinkd_loss)
    uses_groups = True

    def __init__(
        self,
        *,
        eps: float = 0.1,
        iters: int = 20,
        kl_weight: float = 0.0,
        per_image: bool = False,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            eps: entropic regularisation ε (SinKD: 0.1).
            iters: Sinkhorn iterations (SinKD: 20).
            kl_weight: weight of an added forward KL (0: Sinkhorn alone).
            per_image: transport between the ROIs of each image (``num_rois_per_image`` of the call)
                instead of the whole batch.
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.per_image = per_image
        self.options = {"eps": eps, "iters": iters, "kl_weight": kl_weight}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        node = cfg["SINKD"]
        return {
            **super().from_config(cfg),
            "eps": node["EPS"],
            "iters": node["ITERS"],
            "kl_weight": node["KL_WEIGHT"],
            "per_image": node["PER_IMAGE"],
        }

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        *,
        targets: Tensor | None = None,
        num_rois_per_image: int | list[int] | None = None,
    ) -> Tensor:
        num_rois_per_image = num_rois_per_image if self.per_image else None
        return super().forward(
            student_logits, teacher_logits, targets=targets, num_rois_per_image=num_rois_per_image
        )


@KD_LOSS_REGISTRY.register("nkd")
class NKDLoss(KDLoss):
    """
    NKD (Yang et al., ICCV 2023): :func:`~.functional.nkd_loss`; λ is the temperature. Uses the ROIs'
    ``targets``, else the teacher's argmax. Config: NKD.GAMMA.
    """

    functional = staticmethod(KF.nkd_loss)
    uses_targets = True

    def __init__(self, *, gamma: float = 1.5, **kwargs: Any) -> None:
        """
        Args:
            gamma: weight γ of the non-target term (paper: 1.5).
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.options = {"gamma": gamma}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().from_config(cfg), "gamma": cfg["NKD"]["GAMMA"]}


@KD_LOSS_REGISTRY.register("uskd")
class USKDLoss(KDLoss):
    """
    USKD (Yang et al., ICCV 2023): teacher-free customised soft labels, :func:`~.functional.uskd_loss`.
    Works on the student's own class space (default adapter "none"); the teacher only supplies the
    target of ROIs without ground truth. Config: USKD.ALPHA, USKD.BETA; TEMPERATURE must be 1.
    """

    functional = staticmethod(KF.uskd_loss)
    default_adapter = "none"
    uses_targets = True

    def __init__(self, *, alpha: float = 1.0, beta: float = 0.1, **kwargs: Any) -> None:
        """
        Args:
            alpha: weight α of the soft target term (paper: 1.0).
            beta: weight β of the Zipf non-target term (paper: 0.1).
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.options = {"alpha": alpha, "beta": beta}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        node = cfg["USKD"]
        return {**super().from_config(cfg), "alpha": node["ALPHA"], "beta": node["BETA"]}


@KD_LOSS_REGISTRY.register("dkd")
class DKDLoss(KDLoss):
    """
    DKD (Zhao et al., CVPR 2022): α TCKD + β NCKD, :func:`~.functional.dkd_loss`. Uses the ROIs'
    ``targets``, else the teacher's argmax. Config: DKD.ALPHA, DKD.BETA.
    """

    functional = staticmethod(KF.dkd_loss)
    uses_targets = True

    def __init__(self, *, alpha: float = 1.0, beta: float = 8.0, **kwargs: Any) -> None:
        """
        Args:
            alpha: weight α of TCKD (paper: 1.0).
            beta: weight β of NCKD (paper: 8.0 on CIFAR-100).
            kwargs: see :class:`KDLoss`.
        """
        super().__init__(**kwargs)
        self.options = {"alpha": alpha, "beta": beta}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        node = cfg["DKD"]
        return {**super().from_config(cfg), "alpha": node["ALPHA"], "beta": node["BETA"]}


@KD_LOSS_REGISTRY.register("mdist")
class MDistLoss(KDLoss):
    """
    MDist of LLaVA-KD (Cai et al., "LLaVA-KD: A Framework of Distilling Multimodal Large Language
    Models", 2024): the KL divergence KL(p_T || p_S) between the output distributions of every token;
    here every ROI is a token, so the value is :func:`~.functional.kl_loss`'s. Registered under its own
    name so that LLaVA-KD's pair (``mdist`` + ``rdist``) is configured by name.
    """

    functional = staticmethod(KF.kl_loss)


@KD_LOSS_REGISTRY.register("rdist")
class RDistLoss(KDLoss):
    """
    RDist of LLaVA-KD (Cai et al., 2024): 1 - cosine of the per-image ROI x ROI relation matrices of the
    logits, :func:`~.functional.rdist_loss`. Needs ``num_rois_per_image`` at the call (else the whole
    batch is one image). Works across class spaces (default adapter "none").
    """

    functional = staticmethod(KF.rdist_loss)
    default_adapter = "none"
    uses_groups = True
