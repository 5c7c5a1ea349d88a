"""Encoder and decoder networks, matching the original code's configurations.

Every network maps 4-D tensors: images (B, C, H, W) <-> latents (B, z, 1, 1), except the
2-D nets (FCResNet / FCNet), which map (B, d) <-> (B, z).  Parameter counts equal the
original ones (see ``tests/test_nets.py``); the layouts are those of the original classes
``ConvNet2FC``, ``DeConvNet2`` (MNIST), ``IGEBMEncoder``, ``GeneratorGN`` (CIFAR-10),
``ConvNet64``, ``DeConvNet64`` (CelebA) and ``FCResNet`` (2-D), as its configs build them.

The image networks run their activations in the ``channels_last`` memory format and
upsample with :class:`~nae.speed.Upsample2x`; their convolutions are :class:`~nae.speed.Conv2d`
and :class:`~nae.speed.ConvTranspose2d`, which compute the cases that are matrix products as
such: CPU speed tricks of :mod:`nae.speed`, with the original's outputs up to float rounding
(``tests/test_speed_equivalence.py``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError
from .speed import Conv2d, ConvTranspose2d, Upsample2x, to_channels_last


# ---------------------------------------------------------------------------------
# small building blocks


class SphericalActivation(nn.Module):
    """Projects each sample onto the unit sphere: z / ||z||_2 over all non-batch dims."""

    def forward(self, z):
        """``z`` (B, ...) divided by its per-sample L2 norm; same shape."""
        return project_sphere(z)


def project_sphere(z: torch.Tensor) -> torch.Tensor:
    """z / ||z|| per sample, the norm taken over every entry but the batch dimension."""
    norm = z.flatten(1).norm(dim=1)
    return z / norm.view(-1, *([1] * (z.dim() - 1)))


_ACTIVATIONS = {
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "spherical": SphericalActivation,
}


def activation(name: str | None) -> nn.Module:
    """A new output-activation module: ``linear`` (also for None), ``sigmoid``, ``tanh``, ``relu``
    or ``spherical``; a ConfigError for any other name."""
    key = "linear" if name is None else name
    if key not in _ACTIVATIONS:
        raise ConfigError(f"unknown output activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[key]()


# ---------------------------------------------------------------------------------
# 2-D data


class FCResNet(nn.Module):
    """Linear -> n_resblock residual MLP blocks -> ReLU -> Linear (original FCResNet)."""

    def __init__(self, in_dim: int, out_dim: int, res_dim: int = 256, n_res_hidden: int = 1024,
                 n_resblock: int = 5, out_activation: str | None = "linear"):
        super().__init__()
        self.inp = nn.Linear(in_dim, res_dim)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Linear(res_dim, n_res_hidden), nn.ReLU(), nn.Linear(n_res_hidden, res_dim))
            for _ in range(n_resblock)
        )
        self.out = nn.Linear(res_dim, out_dim)
        self.out_act = activation(out_activation)

    def forward(self, x):
        """(B, in_dim) -> (B, out_dim)."""
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out_act(self.out(F.relu(h)))


class FCNet(nn.Module):
    """Plain MLP in_dim -> hidden... -> out_dim with ReLU (a small 2-D net)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (200, 200, 200),
                 out_activation: str | None = "linear"):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers += [nn.Linear(d, out_dim), activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        """(B, in_dim) -> (B, out_dim)."""
        return self.net(x)


# ---------------------------------------------------------------------------------
# 28x28 (MNIST, FashionMNIST)


class ConvNet2FC(nn.Module):
    """Original ``ConvNet2FC`` encoder for 28x28 inputs (nh=8, nh_mlp=1024)."""

    def __init__(self, in_chan: int = 1, out_chan: int = 32, nh: int = 8, nh_mlp: int = 1024,
                 out_activation: str | None = "linear"):
        super().__init__()
        # The original applies ReLU, then max pooling.  Max and ReLU commute (same values, same
        # gradients: a tie the two orders break differently is a tie at zero, where ReLU passes
        # no gradient), so we pool first and apply ReLU to a map 4x smaller.  The layers with
        # weights keep the original's indices, so state dicts are unchanged.
        self.net = nn.Sequential(
            Conv2d(in_chan, nh * 4, 3), nn.ReLU(inplace=True),
            Conv2d(nh * 4, nh * 8, 3),
            nn.MaxPool2d(2, 2), nn.ReLU(inplace=True),
            Conv2d(nh * 8, nh * 8, 3), nn.ReLU(inplace=True),
            Conv2d(nh * 8, nh * 16, 3),
            nn.MaxPool2d(2, 2), nn.ReLU(inplace=True),
            Conv2d(nh * 16, nh_mlp, 4), nn.ReLU(inplace=True),
            Conv2d(nh_mlp, out_chan, 1),
            activation(out_activation),
        )

    def forward(self, x):
        """(B, in_chan, 28, 28) -> (B, out_chan, 1, 1), computed in channels_last."""
        return self.net(to_channels_last(x))


class DeConvNet2(nn.Module):
    """Original ``DeConvNet2`` decoder: (z,1,1) -> (C,28,28)."""

    def __init__(self, in_chan: int = 32, out_chan: int = 1, nh: int = 8,
                 out_activation: str | None = "sigmoid"):
        super().__init__()
        self.conv1 = ConvTranspose2d(in_chan, nh * 16, 4)
        self.up1 = Upsample2x(4)
        self.conv2 = ConvTranspose2d(nh * 16, nh * 8, 3)
        self.conv3 = ConvTranspose2d(nh * 8, nh * 8, 3)
        self.up2 = Upsample2x(12)
        self.conv4 = ConvTranspose2d(nh * 8, nh * 4, 3)
        self.conv5 = ConvTranspose2d(nh * 4, out_chan, 3)
        self.out_act = activation(out_activation)

    def forward(self, z):
        """(B, in_chan, 1, 1) -> (B, out_chan, 28, 28), through 4, 8, 12 and 24 pixels."""
        x = to_channels_last(F.relu(self.conv1(z)))
        x = self.up1(x)
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = self.up2(x)
        x = F.relu(self.conv4(x))
        return self.out_act(self.conv5(x))


# ---------------------------------------------------------------------------------
# 32x32 (CIFAR-10)


class _IGEBMResBlock(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, downsample: bool):
        super().__init__()
        self.conv1 = Conv2d(in_chan, out_chan, 3, padding=1)
        self.conv2 = Conv2d(out_chan, out_chan, 3, padding=1)
        self.skip = Conv2d(in_chan, out_chan, 1, bias=False) if (in_chan != out_chan or downsample) else None
        self.downsample = downsample

    def forward(self, x):
        h = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        h = h + (x if self.skip is None else self.skip(x))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return F.leaky_relu(h, 0.2)


class IGEBMEncoder(nn.Module):
    """Original ``IGEBMEncoder`` (no spectral norm, keepdim): (3,32,32) -> (z,1,1)."""

    def __init__(self, in_chan: int = 3, out_chan: int = 32, out_activation: str | None = "linear"):
        super().__init__()
        self.conv1 = Conv2d(in_chan, 128, 3, padding=1)
        self.blocks = nn.Sequential(
            _IGEBMResBlock(128, 128, True), _IGEBMResBlock(128, 128, False),
            _IGEBMResBlock(128, 256, True), _IGEBMResBlock(256, 256, False),
            _IGEBMResBlock(256, 256, True), _IGEBMResBlock(256, 256, False),
        )
        self.linear = Conv2d(256, out_chan, 1)
        self.out_act = activation(out_activation)

    def forward(self, x):
        """(B, in_chan, 32, 32) -> (B, out_chan, 1, 1): residual blocks down to 4x4, then global
        average pooling and a 1x1 convolution."""
        h = self.blocks(F.leaky_relu(self.conv1(to_channels_last(x)), 0.2))
        h = F.adaptive_avg_pool2d(F.relu(h), 1)
        return self.out_act(self.linear(h))


class _GenResBlockGN(nn.Module):
    def __init__(self, chan: int, num_groups: int = 1):
        super().__init__()
        self.conv1 = Conv2d(chan, chan, 3, padding=1)
        self.conv2 = Conv2d(chan, chan, 3, padding=1)
        nn.init.xavier_uniform_(self.conv1.weight, 1.0)
        nn.init.xavier_uniform_(self.conv2.weight, 1.0)
        self.model = nn.Sequential(
            nn.GroupNorm(num_groups, chan), nn.ReLU(), nn.Upsample(scale_factor=2), self.conv1,
            nn.GroupNorm(num_groups, chan), nn.ReLU(), self.conv2,
        )
        self.bypass = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.model(x) + self.bypass(x)


class SNGANGeneratorGN(nn.Module):
    """Original ``sngan_generator_gn`` (hidden 128): (z,1,1) -> (3,32,32).

    The residual blocks use GroupNorm with 1 group and only the final norm uses
    ``num_groups`` (2), exactly as the original code does.
    """

    def __init__(self, in_chan: int = 32, out_chan: int = 3, hidden_dim: int = 128, num_groups: int = 2,
                 out_activation: str | None = "sigmoid"):
        super().__init__()
        self.dense = ConvTranspose2d(in_chan, hidden_dim, 4)
        self.final = Conv2d(hidden_dim, out_chan, 3, padding=1)
        nn.init.xavier_uniform_(self.dense.weight, 1.0)
        nn.init.xavier_uniform_(self.final.weight, 1.0)
        self.network = nn.Sequential(
            _GenResBlockGN(hidden_dim), _GenResBlockGN(hidden_dim), _GenResBlockGN(hidden_dim),
            nn.GroupNorm(num_groups, hidden_dim), nn.ReLU(), self.final,
        )
        self.out_act = activation(out_activation)

    def forward(self, z):
        """(B, in_chan, 1, 1) -> (B, out_chan, 32, 32): a 4x4 map, then three x2 residual blocks."""
        return self.out_act(self.network(to_channels_last(self.dense(z))))


# ---------------------------------------------------------------------------------
# 64x64 (CelebA)


class ConvNet64(nn.Module):
    """Original ``ConvNet64`` with GroupNorm: (3,64,64) -> (z,1,1)."""

    def __init__(self, in_chan: int = 3, out_chan: int = 64, nh: int = 32, num_groups: int = 8,
                 out_activation: str | None = "linear"):
        super().__init__()
        layers, c = [], in_chan
        for mult in (4, 8, 16, 32):
            layers += [Conv2d(c, nh * mult, 5, stride=2), nn.GroupNorm(num_groups, nh * mult), nn.ReLU(inplace=True)]
            c = nh * mult
        layers += [Conv2d(c, out_chan, 1), activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        """(B, in_chan, 64, 64) -> (B, out_chan, 1, 1): four stride-2 5x5 convolutions (30, 13, 5, 1
        pixels)."""
        return self.net(to_channels_last(x))


class DeConvNet64(nn.Module):
    """Original ``DeConvNet64`` with GroupNorm: (z,1,1) -> (3,64,64)."""

    def __init__(self, in_chan: int = 64, out_chan: int = 3, nh: int = 32, num_groups: int = 8,
                 out_activation: str | None = "sigmoid"):
        super().__init__()
        layers = [ConvTranspose2d(in_chan, nh * 32, 8), nn.GroupNorm(num_groups, nh * 32), nn.ReLU(inplace=True)]
        c = nh * 32
        for mult in (16, 8, 4):
            layers += [ConvTranspose2d(c, nh * mult, 4, stride=2, padding=1),
                       nn.GroupNorm(num_groups, nh * mult), nn.ReLU(inplace=True)]
            c = nh * mult
        layers += [ConvTranspose2d(c, out_chan, 1), activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        """(B, in_chan, 1, 1) -> (B, out_chan, 64, 64): an 8x8 map, then three x2 transposed convolutions."""
        return self.net(z)


# ---------------------------------------------------------------------------------
# registry

NETS = {
    "fcresnet": FCResNet,
    "fcnet": FCNet,
    "conv2fc": ConvNet2FC,
    "deconv2": DeConvNet2,
    "igebm": IGEBMEncoder,
    "sngan_gn": SNGANGeneratorGN,
    "conv64": ConvNet64,
    "deconv64": DeConvNet64,
}


def build_net(name: str, in_dim: int, out_dim: int, **kwargs) -> nn.Module:
    """Builds a registered network; ``in_dim``/``out_dim`` are channels (or features)."""
    if name not in NETS:
        raise ConfigError(f"unknown network {name!r}; choose one of {sorted(NETS)}")
    return NETS[name](in_dim, out_dim, **kwargs)


def count_parameters(module: nn.Module) -> int:
    """The number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())
