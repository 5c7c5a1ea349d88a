"""Network shapes and parameter counts against the original configurations."""
import pytest
import torch
import torch.nn.functional as F

from nae.config import load_config
from nae.models import build_model
from nae.nets import Upsample2x, build_net, count_parameters, project_sphere

# (name, in, out, kwargs, original parameter count, input shape, output shape)
ORIGINAL = [
    ("conv2fc", 1, 32, {}, 2_260_576, (2, 1, 28, 28), (2, 32, 1, 1)),
    ("deconv2", 32, 1, {}, 195_137, (2, 32, 1, 1), (2, 1, 28, 28)),
    ("igebm", 3, 32, {}, 5_142_560, (2, 3, 32, 32), (2, 32, 1, 1)),
    ("sngan_gn", 32, 3, {}, 956_419, (2, 32, 1, 1), (2, 3, 32, 32)),
    ("conv64", 3, 64, {}, 17_284_160, (2, 3, 64, 64), (2, 64, 1, 1)),
    ("deconv64", 64, 3, {}, 15_210_499, (2, 64, 1, 1), (2, 3, 64, 64)),
    ("fcresnet", 2, 2, {}, 2_629_122, (5, 2), (5, 2)),
    ("fcresnet", 2, 3, {}, 2_629_379, (5, 2), (5, 3)),
    ("fcresnet", 3, 2, {}, 2_629_378, (5, 3), (5, 2)),
    ("fcnet", 2, 2, {}, 81_402, (5, 2), (5, 2)),
]


@pytest.mark.parametrize("name,i,o,kw,count,xs,ys", ORIGINAL)
def test_parameter_counts_and_shapes(name, i, o, kw, count, xs, ys):
    net = build_net(name, i, o, **kw)
    n = count_parameters(net)
    print(f"{name} {i}->{o}: {n:,} parameters (original {count:,})")
    assert n == count
    with torch.no_grad():
        assert net(torch.randn(*xs)).shape == ys


@pytest.mark.parametrize("config,total", [("mnist_ood", 2_455_713), ("mnist_holdout", 2_455_713),
                                          ("fmnist_ood", 2_455_713), ("cifar10_ood", 6_098_979),
                                          ("celeba64_ood", 32_494_659)])
def test_model_totals(config, total):
    model = build_model(load_config(config, budget="full"))
    n = count_parameters(model)
    print(f"{config}: {n:,} parameters")
    assert n == total


def test_upsample_matches_bilinear_align_corners():
    x = torch.randn(3, 4, 12, 12, dtype=torch.float64)
    up = Upsample2x(12).double()
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    assert torch.allclose(up(x), ref, atol=1e-6)
    # gradients agree too
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    w = torch.randn(3, 4, 24, 24, dtype=torch.float64)
    (g1,) = torch.autograd.grad((up(x1) * w).sum(), x1)
    (g2,) = torch.autograd.grad((F.interpolate(x2, scale_factor=2, mode="bilinear", align_corners=True) * w).sum(), x2)
    assert torch.allclose(g1, g2, atol=1e-6)


def test_spherical_latents_have_unit_norm():
    model = build_model(load_config("mnist_ood", budget="full"))
    z = model.encode(torch.rand(4, 1, 28, 28))
    assert z.shape == (4, 32, 1, 1)
    assert torch.allclose(z.flatten(1).norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(project_sphere(torch.randn(6, 3)).norm(dim=1), torch.ones(6), atol=1e-6)


def test_energy_is_mean_squared_error_per_sample():
    model = build_model(load_config("mnist_ood", budget="full"))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        e = model.energy(x)
        ref = ((x - model.reconstruct(x)) ** 2).sum(dim=(1, 2, 3)) / 784
    assert e.shape == (3,)
    assert torch.allclose(e, ref, atol=1e-6)
