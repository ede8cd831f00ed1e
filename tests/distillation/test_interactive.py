"""Interactive feature KD (Talking Models): golden values, gradient routing, zero cases, empty input."""

import numpy as np
import pytest
import torch
from torch import nn

from ykd.config import add_ykd_config
from ykd.distillation import FEATURE_KD_REGISTRY, InteractiveKD, build_feature_kd
from ykd.distillation.interactive import LOSS_NAMES

DS, DT, M, KS, KT, R = 6, 5, 4, 5, 3, 7
ALL = dict.fromkeys(LOSS_NAMES, 1.0)


def make(weights=None, *, ds=DS, dt=DT, m=M, hidden=(8,), temperature=1.0, seed=0):
    torch.manual_seed(seed)
    return InteractiveKD(
        student_dim=ds,
        teacher_dim=dt,
        loss_weights=ALL if weights is None else weights,
        message_dim=m,
        hidden_dims=hidden,
        temperature=temperature,
    )


def heads(ds=DS, dt=DT, ks=KS, kt=KT, seed=1):
    """A trainable student classifier and a frozen teacher classifier."""
    torch.manual_seed(seed)
    student, teacher = nn.Linear(ds, ks), nn.Linear(dt, kt)
    teacher.requires_grad_(False)
    return student, teacher


def inputs(r=R, ds=DS, dt=DT, seed=2):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(r, ds, generator=g).requires_grad_(True)
    h_t = torch.randn(r, dt, generator=g).requires_grad_(True)
    return h_s, h_t


def run(kd, student_head, teacher_head, h_s, h_t):
    return kd(
        h_s,
        h_t,
        student_logits=student_head(h_s),
        teacher_logits=teacher_head(h_t),
        student_head=student_head,
        teacher_head=teacher_head,
    )


# ---- independent NumPy reference ----------------------------------------------------------------


def np_mlp(seq: nn.Sequential, x: np.ndarray) -> np.ndarray:
    linears = [layer for layer in seq if isinstance(layer, nn.Linear)]
    for i, layer in enumerate(linears):
        x = x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        if i < len(linears) - 1:
            x = np.maximum(x, 0.0)
    return x


def np_linear(layer: nn.Linear, x: np.ndarray) -> np.ndarray:
    return x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_fold(z: np.ndarray, kt: int, t: float) -> np.ndarray:
    """New classes and bg of [old..., new..., bg] summed in probability at temperature t."""
    rest = z[:, kt - 1 :] / t
    top = rest.max(axis=1, keepdims=True)
    bg = t * (top + np.log(np.exp(rest - top).sum(axis=1, keepdims=True)))
    return np.concatenate([z[:, : kt - 1], bg], axis=1)


def np_kl(student: np.ndarray, teacher: np.ndarray, t: float) -> float:
    """T² KL(softmax(teacher / t) || softmax(student / t)), mean over rows."""
    log_p_t, log_p_s = np_log_softmax(teacher / t), np_log_softmax(student / t)
    return float((np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1).mean() * t**2)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_golden_values_against_numpy(temperature):
    kd = make(temperature=temperature)
    student_head, teacher_head = heads()
    h_s, h_t = inputs()
    losses = run(kd, student_head, teacher_head, h_s, h_t)
    hs, ht = h_s.detach().double().numpy(), h_t.detach().double().numpy()
    m_s, m_t = np_mlp(kd.student_encoder, hs), np_mlp(kd.teacher_encoder, ht)
    rec = ((np_mlp(kd.teacher_decoder, m_t) - ht) ** 2).mean() + (
        (np_mlp(kd.student_decoder, m_s) - hs) ** 2
    ).mean()
    msg = ((m_s - m_t) ** 2).mean()
    z_t, z_s = np_linear(teacher_head, ht), np_linear(student_head, hs)
    t2s_read = np_linear(student_head, np_mlp(kd.student_decoder, m_t))
    t2s = np_kl(np_fold(t2s_read, KT, temperature), z_t, temperature)
    s2t_read = np_linear(teacher_head, np_mlp(kd.teacher_decoder, m_s))
    s2t = np_kl(s2t_read, np_fold(z_s, KT, temperature), temperature)
    expected = {
        "loss_kd_int_rec": rec,
        "loss_kd_int_msg": msg,
        "loss_kd_int_t2s": t2s,
        "loss_kd_int_s2t": s2t,
    }
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name].shape == ()
        np.testing.assert_allclose(losses[name].item(), value, rtol=1e-5, err_msg=name)


def test_module_shapes():
    kd = make(hidden=(8, 16))
    h_s, h_t = inputs()
    assert kd.student_encoder(h_s).shape == (R, M)
    assert kd.teacher_encoder(h_t).shape == (R, M)
    assert kd.student_decoder(torch.zeros(R, M)).shape == (R, DS)
    assert kd.teacher_decoder(torch.zeros(R, M)).shape == (R, DT)
    widths = [layer.out_features for layer in kd.student_encoder if isinstance(layer, nn.Linear)]
    assert widths == [8, 16, M]


def test_weights_scale_terms_and_zero_weights_drop_them():
    student_head, teacher_head = heads()
    h_s, h_t = inputs()
    unit = run(make(), student_head, teacher_head, h_s, h_t)
    weights = {"loss_kd_int_rec": 2.0, "loss_kd_int_msg": 0.0, "loss_kd_int_s2t": 0.5}
    scaled = run(make(weights), student_head, teacher_head, h_s, h_t)
    assert set(scaled) == {"loss_kd_int_rec", "loss_kd_int_s2t"}
    torch.testing.assert_close(scaled["loss_kd_int_rec"], 2.0 * unit["loss_kd_int_rec"])
    torch.testing.assert_close(scaled["loss_kd_int_s2t"], 0.5 * unit["loss_kd_int_s2t"])


# Parameters each term may train; the teacher's head and features never get a gradient.
TRAINED = {
    "loss_kd_int_rec": {"student_encoder", "student_decoder", "teacher_encoder", "teacher_decoder"},
    "loss_kd_int_msg": {"student_encoder", "teacher_encoder", "student_features"},
    "loss_kd_int_t2s": {"teacher_encoder", "student_decoder", "student_head"},
    "loss_kd_int_s2t": {"student_encoder", "teacher_decoder", "student_features"},
}


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradients_reach_only_the_intended_parameters(name):
    kd = make({name: 1.0})
    student_head, teacher_head = heads()
    h_s, h_t = inputs()
    # The student's own logits are an input of the loss, not a path into the student's head here.
    losses = kd(
        h_s,
        h_t,
        student_logits=student_head(h_s).detach(),
        teacher_logits=teacher_head(h_t),
        student_head=student_head,
        teacher_head=teacher_head,
    )
    losses[name].backward()
    parts = {
        "student_encoder": kd.student_encoder,
        "student_decoder": kd.student_decoder,
        "teacher_encoder": kd.teacher_encoder,
        "teacher_decoder": kd.teacher_decoder,
        "student_head": student_head,
        "teacher_head": teacher_head,
    }
    reached = {k for k, m in parts.items() if any(p.grad is not None for p in m.parameters())}
    if h_s.grad is not None:
        reached.add("student_features")
    assert reached == TRAINED[name]
    assert h_t.grad is None
    assert all(p.grad is None for p in teacher_head.parameters())


def identity_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
        layer.bias.zero_()
    return layer


def test_terms_are_zero_where_both_sides_agree():
    """Identity encoders/decoders, equal features and equal heads over the same classes: all 0."""
    d, k = 5, 4
    kd = make(ds=d, dt=d, m=d, hidden=())
    for name in ("student_encoder", "student_decoder", "teacher_encoder", "teacher_decoder"):
        setattr(kd, name, nn.Sequential(identity_linear(d)))
    student_head, teacher_head = heads(ds=d, dt=d, ks=k, kt=k)
    teacher_head.load_state_dict(student_head.state_dict())
    h = torch.randn(R, d)
    losses = run(kd, student_head, teacher_head, h.clone().requires_grad_(True), h.clone())
    assert set(losses) == set(LOSS_NAMES)
    for name, value in losses.items():
        assert value.item() == pytest.approx(0.0, abs=1e-6), name


def test_reconstruction_is_zero_for_inverse_decoders_only():
    d = 4
    kd = make({"loss_kd_int_rec": 1.0}, ds=d, dt=d, m=d, hidden=())
    q, _ = torch.linalg.qr(torch.randn(d, d))
    for encoder, decoder in (
        (kd.student_encoder, kd.student_decoder),
        (kd.teacher_encoder, kd.teacher_decoder),
    ):
        with torch.no_grad():
            encoder[0].weight.copy_(q)
            encoder[0].bias.fill_(0.3)
            decoder[0].weight.copy_(q.T)
            decoder[0].bias.copy_(-0.3 * q.T.sum(dim=1))
    student_head, teacher_head = heads(ds=d, dt=d)
    h_s, h_t = inputs(ds=d, dt=d)
    losses = run(kd, student_head, teacher_head, h_s, h_t)
    assert losses["loss_kd_int_rec"].item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        kd.teacher_decoder[0].bias.add_(1.0)  # the teacher's side now reconstructs h_t + c
    losses = run(kd, student_head, teacher_head, h_s, h_t)
    # Every teacher element is now off by exactly 1 (MSE 1), the student's side still exact.
    assert losses["loss_kd_int_rec"].item() == pytest.approx(1.0, rel=1e-5)


def test_empty_batch_gives_zero_and_backpropagates():
    kd = make()
    student_head, teacher_head = heads()
    h_s, h_t = inputs(r=0)
    losses = run(kd, student_head, teacher_head, h_s, h_t)
    assert set(losses) == set(LOSS_NAMES)
    total = sum(losses.values())
    assert total.item() == 0.0
    total.backward()


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown loss names"):
        make({"loss_kd_int_typo": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        make({"loss_kd_int_rec": -1.0})
    with pytest.raises(ValueError, match="temperature"):
        make(temperature=0.0)


def test_registered_and_built_from_config():
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_ykd_config(cfg)
    node = cfg.MODEL.YKD.INTERACTIVE
    assert "interactive" in FEATURE_KD_REGISTRY and not InteractiveKD.enabled(node)
    node.WEIGHTS.AGREEMENT = 0.5
    node.HIDDEN_DIMS = []
    assert InteractiveKD.enabled(node)
    kd = build_feature_kd(
        "interactive", **InteractiveKD.from_config(node, student_dim=6, teacher_dim=5)
    )
    assert kd.loss_weights == {"loss_kd_int_msg": 0.5}
    assert kd.student_encoder[0].in_features == 6 and kd.student_encoder[0].out_features == 64
    assert len(kd.teacher_decoder) == 1 and kd.teacher_decoder[0].out_features == 5
