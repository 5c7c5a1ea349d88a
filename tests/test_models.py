"""The objectives live with the models: NAE.loss and pretrain_loss, written out here once more."""
import torch

from nae.config import load_config
from nae.models import build_model, weight_penalty


def test_nae_loss_is_the_maximum_likelihood_objective():
    cfg = load_config("mnist_ood", budget="smoke")
    m = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    x, x_neg = torch.rand(8, 1, 28, 28, generator=g), torch.rand(4, 1, 28, 28, generator=g)  # fewer negatives
    pc = cfg.train.nae
    out = m.loss(x, x_neg, pc)
    e_pos, e_neg = m.energy(x), m.energy(x_neg)
    expected = e_pos.mean() - e_neg.mean() + pc.gamma * (e_neg ** 2).mean() + pc.l2_enc * weight_penalty(m.encoder)
    assert torch.allclose(out["loss"], expected, rtol=1e-6)
    assert out["e_neg"].shape == (4,) and out["loss"].requires_grad


def test_learnable_temperature_gets_the_likelihood_gradient():
    cfg = load_config("toy2d", budget="smoke", overrides=["model.learn_temperature=true"])
    m = build_model(cfg)
    x, x_neg = torch.randn(16, 2), torch.randn(16, 2) * 3
    out = m.loss(x, x_neg, cfg.train.nae)
    (gT,) = torch.autograd.grad(out["loss"], m.log_temperature)
    diff = (m.energy(x).mean() - m.energy(x_neg).mean()).detach()
    # d/dlogT of diff / T = -diff / T: T grows when the negatives' energy is below the data's
    assert torch.allclose(gT, -diff / m.T.detach(), rtol=1e-5)


def test_pretrain_loss_is_the_mean_reconstruction_error_plus_penalty():
    cfg = load_config("mnist_ood", budget="smoke")
    m = build_model(cfg)
    x = torch.rand(8, 1, 28, 28)
    out = m.pretrain_loss(x, cfg.train.ae)
    assert torch.allclose(out["recon"], m.energy(x).mean())
    assert torch.allclose(out["loss"], out["recon"] + cfg.train.ae.l2_enc * weight_penalty(m.encoder))
