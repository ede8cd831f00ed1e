"""
Interactive feature distillation after Talking Models (Zhao et al., "Talking Models: Distill Pre-trained
Knowledge to Downstream Models via Interactive Communication", arXiv 2310.03188).

From the paper's abstract: teacher and student each train an encoder from their hidden states to a
message in a shared message space and a decoder from any message to their own hidden states, so that
the teacher can send its knowledge as messages and the student can send messages that the teacher
interprets. The abstract does not give the loss terms; the four below, their exact form (MSE, forward
KL with MMA's class folding, which side's features are detached) and their names are **ours**.

Notation, on R ROIs: h_S (R, Ds) and h_T (R, Dt) the student's and the frozen teacher's hidden features
(detached), E_S, E_T the encoders (D -> M), G_S, G_T the decoders (M -> D), m_S = E_S(h_S),
m_T = E_T(h_T), P_S the student's head (R, Ks logits over [old..., new..., bg]), P_T the teacher's
frozen head (R, Kt logits over [old..., bg]), z_S, z_T their logits on their own features, fold() MMA's
adapter (new classes folded into the background, :func:`~ykd.distillation.adapt_class_space`), KL_T the
T²-scaled forward KL of :func:`~ykd.distillation.functional.kl_loss`, sg() stop-gradient:

- ``loss_kd_int_rec`` (reconstruction): MSE(G_T(E_T(h_T)), h_T) + MSE(G_S(E_S(sg h_S)), sg h_S); trains
  the four encoders/decoders only (the student's features are not reshaped to be reconstructible).
- ``loss_kd_int_msg`` (message agreement): MSE(m_S, m_T); trains E_S, E_T and, through m_S, the student.
- ``loss_kd_int_t2s`` (teacher to student): KL_T(z_T ‖ fold(P_S(G_S(m_T)))): the student's head reads
  the decoded teacher message as the teacher reads its own features; trains E_T, G_S and P_S.
- ``loss_kd_int_s2t`` (student to teacher): KL_T(fold(sg z_S) ‖ P_T(G_T(m_S))): the teacher's frozen
  head reads the decoded student message consistently with the student's own predictions, seen from
  the teacher's class space (our reading of "the student's targets": on distillation ROIs there are no
  labels); trains E_S, G_T and, through m_S, the student. P_T gets no gradient: it is frozen by the
  caller (``requires_grad=False``), gradients only pass through it.

The teacher's features and logits are detached here, so nothing of the teacher but its encoder and
decoder learns. MSE is the mean over rows and feature dimensions; every term is 0 on R = 0 ROIs.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .adapters import adapt_class_space
from .feature_kd import FeatureDistiller, FeatureKDInputs
from .functional import kl_loss
from .registry import FEATURE_KD_REGISTRY

__all__ = ["LOSS_NAMES", "InteractiveKD", "mlp"]

_CONFIG_WEIGHTS = {
    "loss_kd_int_rec": "RECONSTRUCTION",
    "loss_kd_int_msg": "AGREEMENT",
    "loss_kd_int_t2s": "TEACHER_TO_STUDENT",
    "loss_kd_int_s2t": "STUDENT_TO_TEACHER",
}
"""The loss names and, for each, its weight's key in the ``MODEL.YKD.INTERACTIVE.WEIGHTS`` node."""
LOSS_NAMES = tuple(_CONFIG_WEIGHTS)


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear layers ``in_dim -> hidden_dims... -> out_dim`` with ReLU between them (none after the last)."""
    dims = [in_dim, *hidden_dims, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        if i > 0:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def _mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of two (R, D) tensors; 0 (with a graph) when R = 0."""
    diff = (a.float() - b.float()).pow(2)
    return diff.mean() if diff.numel() > 0 else diff.sum()


@FEATURE_KD_REGISTRY.register("interactive")
class InteractiveKD(FeatureDistiller):
    """
    The Talking-Models-style distiller of the module docstring: encoders and decoders of both sides
    (``student_encoder``, ``student_decoder``, ``teacher_encoder``, ``teacher_decoder``) and the
    weighted terms ``loss_kd_int_{rec,msg,t2s,s2t}``; terms of weight 0 are neither computed nor
    returned. Config: ``MODEL.YKD.INTERACTIVE`` (on when a weight is positive).
    """

    config_node = "INTERACTIVE"
    needs_rois = True

    def __init__(
        self,
        *,
        student_dim: int,
        teacher_dim: int,
        loss_weights: Mapping[str, float],
        message_dim: int = 64,
        hidden_dims: Sequence[int] = (256,),
        temperature: float = 1.0,
    ) -> None:
        """
        Args:
            student_dim, teacher_dim: Ds and Dt, the widths of the two sides' hidden features.
            loss_weights: weight of each of ``loss_kd_int_{rec,msg,t2s,s2t}`` (missing = 0).
            message_dim: M, the width of the shared message space.
            hidden_dims: widths of the hidden layers of every encoder and decoder ([] = linear).
            temperature: T of the two KL terms.
        """
        super().__init__()
        unknown = set(loss_weights) - set(LOSS_NAMES)
        if unknown:
            raise ValueError(
                f"InteractiveKD: unknown loss names {sorted(unknown)}; known: {LOSS_NAMES}"
            )
        if any(w < 0 for w in loss_weights.values()):
            raise ValueError(f"InteractiveKD: loss weights must be >= 0, got {dict(loss_weights)}")
        if not temperature > 0:
            raise ValueError(f"InteractiveKD: temperature must be > 0, got {temperature}")
        self.loss_weights = {k: float(w) for k, w in loss_weights.items() if w > 0}
        self.temperature = float(temperature)
        self.student_encoder = mlp(student_dim, hidden_dims, message_dim)
        self.student_decoder = mlp(message_dim, hidden_dims, student_dim)
        self.teacher_encoder = mlp(teacher_dim, hidden_dims, message_dim)
        self.teacher_decoder = mlp(message_dim, hidden_dims, teacher_dim)

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The terms of positive weight (those :meth:`distil` returns)."""
        return tuple(self.loss_weights)

    @classmethod
    def from_config(
        cls, node: Mapping[str, Any], *, student_dim: int, teacher_dim: int
    ) -> dict[str, Any]:
        """Keyword arguments of ``__init__`` from the ``MODEL.YKD.INTERACTIVE`` node."""
        weights = node["WEIGHTS"]
        return {
            "student_dim": student_dim,
            "teacher_dim": teacher_dim,
            "loss_weights": {name: weights[key] for name, key in _CONFIG_WEIGHTS.items()},
            "message_dim": node["MESSAGE_DIM"],
            "hidden_dims": list(node["HIDDEN_DIMS"]),
            "temperature": node["TEMPERATURE"],
        }

    @classmethod
    def enabled(cls, node: Mapping[str, Any]) -> bool:
        """Whether the ``MODEL.YKD.INTERACTIVE`` node gives any term a positive weight."""
        return any(node["WEIGHTS"][key] > 0 for key in _CONFIG_WEIGHTS.values())

    def distil(self, inputs: FeatureKDInputs) -> dict[str, Tensor]:
        """:meth:`forward` on the ROI fields of ``inputs``."""
        return self(
            inputs.student_hidden,
            inputs.teacher_hidden,
            student_logits=inputs.student_logits,
            teacher_logits=inputs.teacher_logits,
            student_head=inputs.student_head,
            teacher_head=inputs.teacher_head,
        )

    def forward(
        self,
        student_features: Tensor,
        teacher_features: Tensor,
        *,
        student_logits: Tensor,
        teacher_logits: Tensor,
        student_head: Callable[[Tensor], Tensor],
        teacher_head: Callable[[Tensor], Tensor],
    ) -> dict[str, Tensor]:
        """
        Args:
            student_features: (R, Ds) the student's hidden features (with their graph).
            teacher_features: (R, Dt) the teacher's hidden features on the same R ROIs.
            student_logits: (R, Ks) P_S(h_S), [old..., new..., bg].
            teacher_logits: (R, Kt) P_T(h_T), [old..., bg], Kt <= Ks.
            student_head: (R, Ds) -> (R, Ks) logits, the student's (trainable) classifier.
            teacher_head: (R, Dt) -> (R, Kt) logits, the teacher's classifier, frozen by the caller.

        Returns:
            The weighted terms of positive weight, scalars.
        """
        weights = self.loss_weights
        h_t = teacher_features.detach()
        z_t = teacher_logits.detach()
        num_teacher_classes = z_t.shape[1]
        losses = {}
        m_t = self.teacher_encoder(h_t)
        if weights.keys() & {"loss_kd_int_msg", "loss_kd_int_s2t"}:
            m_s = self.student_encoder(student_features)
        if "loss_kd_int_rec" in weights:
            h_s = student_features.detach()
            losses["loss_kd_int_rec"] = _mse(self.teacher_decoder(m_t), h_t) + _mse(
                self.student_decoder(self.student_encoder(h_s)), h_s
            )
        if "loss_kd_int_msg" in weights:
            losses["loss_kd_int_msg"] = _mse(m_s, m_t)
        if "loss_kd_int_t2s" in weights:
            read = student_head(self.student_decoder(m_t))
            losses["loss_kd_int_t2s"] = kl_loss(
                self._fold(read, num_teacher_classes), z_t, temperature=self.temperature
            )
        if "loss_kd_int_s2t" in weights:
            read = teacher_head(self.teacher_decoder(m_s))
            target = self._fold(student_logits.detach(), num_teacher_classes)
            losses["loss_kd_int_s2t"] = kl_loss(read, target, temperature=self.temperature)
        return {k: v * weights[k] for k, v in losses.items()}

    def _fold(self, logits: Tensor, num_teacher_classes: int) -> Tensor:
        return adapt_class_space(logits, num_teacher_classes, "fold", temperature=self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, loss_weights={self.loss_weights}"
