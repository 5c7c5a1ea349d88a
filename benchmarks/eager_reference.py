"""A plain eager transcription of the ORIGINAL NAE code's computation (V1 trainer).

This is the baseline of ``benchmarks/bench_step.py`` (``eager_nae_step_s``) and the
reference of ``tests/test_speed_equivalence.py``.  It does what swyoon/normalized-
autoencoders does (see ../shared/reference/original-nae.md, sections 1-3), op for op:

* networks with the original ops: ``nn.ConvTranspose2d``, ``F.interpolate(bilinear,
  align_corners=True)``, ``nn.MaxPool2d``, ``nn.Upsample`` (nearest), ``GroupNorm``, NCHW
  memory format, fp32;
* ``sample_langevin_v2``: model parameters keep ``requires_grad=True`` during the chains,
  ``autograd.grad(..., only_inputs=True)``, **n + 1** energy/gradient evaluations per chain
  (the last one is unused), the V1 row-L2 gradient clip with its ``+1e-6`` factor, the
  per-step lists of samples / dynamics / drift / diffusion moved "to the CPU";
* the latent ``SampleBuffer`` of the original (a Python list of CPU tensors, FIFO with
  ``pop(0)``, ``random.choices`` + ``torch.stack``), the replay count drawn with numpy,
  ``torch.cat`` of replayed and fresh latents;
* the V1 ``train_step``: ``zero_grad``, E(x-) and E(x) with gradients, loss =
  mean E(x) - mean E(x-) + gamma mean E(x-)^2 + l2 penalties, ``backward``, optimiser step.

The parameter names equal those of ``nae.nets`` / ``nae.models.NAE`` (the original's
``DummyDistribution`` wrapper and ``temperature_`` buffer are left out), so
``EagerNAE.from_model(model)`` shares the weights of one of our models.

Randomness: like the original, the chains draw from the global torch RNG and the
buffer from ``random`` / ``numpy``; pass ``generator=`` to draw the chain noise from a
``torch.Generator`` instead, in the same order as ``nae.langevin.langevin_chain``.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.autograd as autograd
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------
# networks (original forms; parameter names as in nae.nets)


class ConvNet2FC(nn.Module):
    def __init__(self, in_chan=1, out_chan=32, nh=8, nh_mlp=1024):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_chan, nh * 4, 3), nn.ReLU(),
            nn.Conv2d(nh * 4, nh * 8, 3), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(nh * 8, nh * 8, 3), nn.ReLU(),
            nn.Conv2d(nh * 8, nh * 16, 3), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(nh * 16, nh_mlp, 4), nn.ReLU(),
            nn.Conv2d(nh_mlp, out_chan, 1),
        )

    def forward(self, x):
        return self.net(x)


class DeConvNet2(nn.Module):
    def __init__(self, in_chan=32, out_chan=1, nh=8):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(in_chan, nh * 16, kernel_size=4, bias=True)
        self.conv2 = nn.ConvTranspose2d(nh * 16, nh * 8, kernel_size=3, bias=True)
        self.conv3 = nn.ConvTranspose2d(nh * 8, nh * 8, kernel_size=3, bias=True)
        self.conv4 = nn.ConvTranspose2d(nh * 8, nh * 4, kernel_size=3, bias=True)
        self.conv5 = nn.ConvTranspose2d(nh * 4, out_chan, kernel_size=3, bias=True)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = self.conv2(x)
        x = F.relu(x)
        x = self.conv3(x)
        x = F.relu(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = self.conv4(x)
        x = F.relu(x)
        x = self.conv5(x)
        return torch.sigmoid(x)


class _IGEBMResBlock(nn.Module):
    def __init__(self, in_chan, out_chan, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chan, out_chan, 3, padding=1)
        self.conv2 = nn.Conv2d(out_chan, out_chan, 3, padding=1)
        self.skip = nn.Conv2d(in_chan, out_chan, 1, bias=False) if (in_chan != out_chan or downsample) else None
        self.downsample = downsample

    def forward(self, x):
        out = x
        out = self.conv1(out)
        out = F.leaky_relu(out, negative_slope=0.2)
        out = self.conv2(out)
        if self.skip is not None:
            out = out + self.skip(x)
        else:
            out = out + x
        if self.downsample:
            out = F.avg_pool2d(out, 2)
        out = F.leaky_relu(out, negative_slope=0.2)
        return out


class IGEBMEncoder(nn.Module):
    def __init__(self, in_chan=3, out_chan=32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chan, 128, 3, padding=1)
        self.blocks = nn.Sequential(
            _IGEBMResBlock(128, 128, True), _IGEBMResBlock(128, 128, False),
            _IGEBMResBlock(128, 256, True), _IGEBMResBlock(256, 256, False),
            _IGEBMResBlock(256, 256, True), _IGEBMResBlock(256, 256, False),
        )
        self.linear = nn.Conv2d(256, out_chan, 1)

    def forward(self, x):
        out = self.conv1(x)
        out = F.leaky_relu(out, negative_slope=0.2)
        for block in self.blocks:
            out = block(out)
        out = F.relu(out)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.linear(out)


class _GenResBlockGN(nn.Module):
    def __init__(self, chan, num_groups=1):
        super().__init__()
        self.conv1 = nn.Conv2d(chan, chan, 3, padding=1)
        self.conv2 = nn.Conv2d(chan, chan, 3, padding=1)
        self.model = nn.Sequential(
            nn.GroupNorm(num_groups, chan), nn.ReLU(), nn.Upsample(scale_factor=2), self.conv1,
            nn.GroupNorm(num_groups, chan), nn.ReLU(), self.conv2,
        )
        self.bypass = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.model(x) + self.bypass(x)


class SNGANGeneratorGN(nn.Module):
    def __init__(self, in_chan=32, out_chan=3, hidden_dim=128, num_groups=2):
        super().__init__()
        self.dense = nn.ConvTranspose2d(in_chan, hidden_dim, 4)
        self.final = nn.Conv2d(hidden_dim, out_chan, 3, padding=1)
        self.network = nn.Sequential(
            _GenResBlockGN(hidden_dim), _GenResBlockGN(hidden_dim), _GenResBlockGN(hidden_dim),
            nn.GroupNorm(num_groups, hidden_dim), nn.ReLU(), self.final,
        )

    def forward(self, z):
        return torch.sigmoid(self.network(self.dense(z)))


_NETS = {"conv2fc": ConvNet2FC, "deconv2": DeConvNet2, "igebm": IGEBMEncoder, "sngan_gn": SNGANGeneratorGN}


# ---------------------------------------------------------------------------------
# Langevin (original models/langevin.py)


def clip_vector_norm(x, max_norm):
    norm = x.norm(dim=-1, keepdim=True)
    x = x * ((norm < max_norm).to(torch.float) + (norm > max_norm).to(torch.float) * max_norm / norm + 1e-6)
    return x


def sample_langevin_v2(x, model, stepsize, n_steps, noise_scale=None, clip_x=None, clip_grad=None,
                       reject_boundary=False, noise_anneal=None, spherical=False, temperature=None,
                       generator=None):
    """The original chain without MH (no image config uses it); ``generator``: see the module doc."""
    if noise_scale is None:
        noise_scale = np.sqrt(stepsize * 2)
    if stepsize is None:
        stepsize = (noise_scale ** 2) / 2
    noise_scale_ = noise_scale
    stepsize_ = stepsize
    if temperature is None:
        temperature = 1.0

    x = x.detach()
    x.requires_grad = True
    E_x = model(x)
    grad_E_x = autograd.grad(E_x.sum(), x, only_inputs=True)[0]
    if clip_grad is not None:
        grad_E_x = clip_vector_norm(grad_E_x, max_norm=clip_grad)

    l_samples = [x.detach().to("cpu")]
    l_dynamics, l_drift, l_diffusion = [], [], []
    for i_step in range(n_steps):
        if generator is None:
            noise = torch.randn_like(x) * noise_scale_
        else:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * noise_scale_
        dynamics = -stepsize_ * grad_E_x / temperature + noise
        y = x + dynamics
        if clip_x is not None:
            if reject_boundary:
                accept = ((y >= clip_x[0]) & (y <= clip_x[1])).view(len(x), -1).all(dim=1)
                reject = ~accept
                y[reject] = x[reject]
            else:
                y = torch.clamp(y, clip_x[0], clip_x[1])
        if spherical:
            if len(y.shape) == 4:
                y = y / y.view(len(y), -1).norm(dim=1)[:, None, None, None]
            else:
                y = y / y.norm(dim=1, p=2, keepdim=True)

        E_y = model(y)  # evaluated after the last step too (n + 1 passes)
        grad_E_y = autograd.grad(E_y.sum(), y, only_inputs=True)[0]
        if clip_grad is not None:
            grad_E_y = clip_vector_norm(grad_E_y, max_norm=clip_grad)

        x = y
        grad_E_x = grad_E_y
        E_x = E_y
        l_dynamics.append(dynamics.detach().cpu())
        l_drift.append((-stepsize * grad_E_x).detach().cpu())
        l_diffusion.append(noise.detach().cpu())
        l_samples.append(x.detach().cpu())
        if noise_anneal is not None:
            noise_scale_ = noise_scale / (1 + i_step)

    return {"sample": x.detach(), "sample_x": x.detach(), "l_samples": l_samples, "l_dynamics": l_dynamics,
            "l_drift": l_drift, "l_diffusion": l_diffusion, "E_x": E_x.detach()}


class SampleBuffer:
    """The original replay buffer: a list of CPU tensors."""

    def __init__(self, max_samples=10000):
        self.max_samples = max_samples
        self.buffer = []

    def __len__(self):
        return len(self.buffer)

    def push(self, samples):
        samples = samples.detach().to("cpu")
        for sample in samples:
            self.buffer.append(sample)
            if len(self.buffer) > self.max_samples:
                self.buffer.pop(0)

    def get(self, n_samples):
        samples = random.choices(self.buffer, k=n_samples)
        return torch.stack(samples, dim=0)


# ---------------------------------------------------------------------------------
# the V1 NAE


class EagerNAE(nn.Module):
    def __init__(self, encoder, decoder, x_shape, z_dim, sampler_cfg, spherical=True, temperature=1.0,
                 x_bound=(0.0, 1.0), gamma=1.0, l2_norm_reg_en=None, l2_norm_reg_de=None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.x_shape = tuple(x_shape)
        self.z_shape = (z_dim, 1, 1)
        self.spherical = spherical
        self.x_bound = x_bound
        self.register_buffer("log_temperature", torch.tensor(float(np.log(temperature)), dtype=torch.float32))
        self.zc, self.xc = sampler_cfg.z_chain, sampler_cfg.x_chain
        self.replay_ratio = sampler_cfg.replay_ratio
        self.buffer = SampleBuffer(max_samples=sampler_cfg.buffer_size)
        self.gamma = gamma
        self.l2_norm_reg_en = l2_norm_reg_en
        self.l2_norm_reg_de = l2_norm_reg_de

    # -- construction from one of our configs / models
    @classmethod
    def from_config(cls, cfg):
        m = cfg.model
        enc_kw, dec_kw = dict(m.encoder), dict(m.decoder)
        enc_name, dec_name = enc_kw.pop("name"), dec_kw.pop("name")
        if enc_name not in _NETS or dec_name not in _NETS:
            raise ValueError(f"no eager reference for networks {enc_name!r}/{dec_name!r}")
        enc_kw.pop("out_activation", None)
        dec_kw.pop("out_activation", None)
        encoder = _NETS[enc_name](m.x_shape[0], m.z_dim, **enc_kw)
        decoder = _NETS[dec_name](m.z_dim, m.x_shape[0], **dec_kw)
        return cls(encoder, decoder, m.x_shape, m.z_dim, cfg.sampler, m.spherical, m.temperature, m.x_bound,
                   cfg.train.nae.gamma, cfg.train.nae.l2_enc, cfg.train.nae.l2_dec)

    @classmethod
    def from_model(cls, cfg, model):
        """An eager model with a copy of ``model``'s weights (state-dict keys are shared)."""
        ref = cls.from_config(cfg)
        sd = {k: v for k, v in model.state_dict().items()}
        ref.load_state_dict(sd, strict=True)
        return ref.to(next(model.parameters()).device)

    @property
    def temperature(self):
        return self.log_temperature.exp()

    # -- the model
    def encode(self, x):
        z = self.encoder(x)
        if self.spherical:
            z = z / z.view(len(z), -1).norm(dim=1)[:, None, None, None]
        return z

    def recon(self, x):
        return self.decoder(self.encode(x))

    def energy(self, x):
        recon = self.recon(x)
        return ((x - recon) ** 2).view((x.shape[0], -1)).mean(dim=1)

    def energy_with_z(self, z):
        return self.energy(self.decoder(z))

    predict = energy

    # -- sampling
    def initial_sample(self, n_samples, device, replay=True):
        l_sample = []
        if not replay or len(self.buffer) == 0:
            n_replay = 0
        else:
            n_replay = (np.random.rand(n_samples) < self.replay_ratio).sum()
            l_sample.append(self.buffer.get(n_replay))
        shape = (n_samples - n_replay,) + self.z_shape
        l_sample.append(torch.randn(shape))
        z = torch.cat(l_sample).to(device)
        if self.spherical:
            z = z / z.view(len(z), -1).norm(dim=1)[:, None, None, None]
        return z

    def sample_z(self, z0, generator=None):
        c = self.zc
        return sample_langevin_v2(z0, self.energy_with_z, stepsize=c.step_size, n_steps=c.n_steps,
                                  noise_scale=c.noise_std, clip_x=None, clip_grad=c.clip_grad,
                                  reject_boundary=False, noise_anneal=None, spherical=self.spherical,
                                  temperature=self.temperature, generator=generator)

    def sample_x(self, x0, generator=None):
        c = self.xc
        return sample_langevin_v2(x0, self.energy, stepsize=c.step_size, n_steps=c.n_steps,
                                  noise_scale=c.noise_std, clip_x=self.x_bound, clip_grad=c.clip_grad,
                                  reject_boundary=c.reject_boundary, noise_anneal=c.noise_anneal or None,
                                  spherical=False, temperature=self.temperature, generator=generator)

    def sample(self, n_sample, device="cpu", replay=True):
        z0 = self.initial_sample(n_sample, device, replay)
        d_z = self.sample_z(z0)
        sample_z = d_z["sample"]
        if replay:
            self.buffer.push(sample_z)
        sample_x_0 = self.decoder(sample_z).detach()
        if self.x_bound is not None:
            sample_x_0.clamp_(self.x_bound[0], self.x_bound[1])
        d_x = self.sample_x(sample_x_0)
        return {"sample_x": d_x["sample"], "sample_z": sample_z, "sample_x0": sample_x_0}

    # -- training
    def weight_norm(self, net):
        return sum((p ** 2).sum() for p in net.parameters())

    def train_step(self, x, opt):
        neg_x = self.sample(len(x), x.device, replay=True)["sample_x"]
        opt.zero_grad()
        neg_e = self.energy(neg_x)
        pos_e = self.energy(x)
        loss = pos_e.mean() - neg_e.mean()
        if self.gamma is not None:
            loss = loss + self.gamma * (neg_e ** 2).mean()
        if self.l2_norm_reg_en is not None:
            loss = loss + self.l2_norm_reg_en * self.weight_norm(self.encoder)
        if self.l2_norm_reg_de is not None:
            loss = loss + self.l2_norm_reg_de * self.weight_norm(self.decoder)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "pos_e": pos_e.mean().item(), "neg_e": neg_e.mean().item()}
