"""The Normalized Autoencoder and its baselines (plain AE, VAE).

All three share one interface used by the trainer, the evaluator and the notebooks:

* ``energy(x)``: the outlier score, one value per sample (higher = more anomalous).
  For NAE and AE this is the reconstruction error averaged over dimensions,
  E(x) = (1/D) * sum_i (x_i - xhat_i)^2.  NAE reads it as an energy, p(x) ~ exp(-E(x)/T).
* ``reconstruct(x)``, ``encode(x)``, ``decode(z)``.
* ``sample(n)`` (NAE: Langevin samples from the model; AE: decoded random latents;
  VAE: decoded prior samples).
* the training objectives live with the models (as minGPT's ``forward`` returns its
  loss): ``pretrain_loss(x, pc)`` for the AE phase (every model) and, for the NAE,
  ``NAE.loss(x, x_neg, pc)``, the maximum-likelihood objective of the paper's eq. (4)-(5).
  ``pc`` is the phase's config (:class:`nae.config.AEPhaseConfig` or
  :class:`~nae.config.NAEPhaseConfig`): weights of the penalties, gamma, the loss variant.
  Each returns a dict with ``"loss"`` (the tensor to differentiate) and detached
  statistics for the logs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .errors import ConfigError
from .nets import build_net, project_sphere


def weight_penalty(module) -> torch.Tensor:
    """Sum of squares of every parameter of ``module`` (biases and norms included)."""
    return sum((p ** 2).sum() for p in module.parameters())


class _Base(nn.Module):
    kind = "base"

    def __init__(self, encoder: nn.Module, decoder: nn.Module, x_shape, z_dim: int, spherical: bool,
                 x_bound=(0.0, 1.0)):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.x_shape = tuple(x_shape)
        self.z_dim = z_dim
        self.z_shape = (z_dim,) if len(self.x_shape) == 1 else (z_dim, 1, 1)
        self.spherical = spherical
        self.x_bound = None if x_bound is None else tuple(x_bound)
        self.sampler = None  # set by build_model for NAE

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device

    def encode(self, x):
        """The posterior mean of the latent code of ``x`` (the VAE's encoding)."""
        """The latent code f_e(x), projected onto the unit sphere when ``spherical``."""
        z = self.encoder(x)
        return project_sphere(z) if self.spherical else z

    def decode(self, z):
        """The decoder's output f_d(z)."""
        return self.decoder(z)

    def reconstruct(self, x):
        """f_d(f_e(x)): what the model makes of its input."""
        return self.decode(self.encode(x))

    def energy(self, x):
        """Per-sample reconstruction error, averaged over all dimensions."""
        err = (x - self.reconstruct(x)) ** 2
        return err.flatten(1).mean(1)

    score = energy

    def latent_energy(self, z):
        """E(dec(z)): the energy of a decoded latent (the latent chain's target)."""
        return self.energy(self.decode(z))

    def add_penalties(self, loss, pc):
        """``loss`` plus the L2 weight penalties of a phase config (``l2_enc``, ``l2_dec``)."""
        if pc.l2_enc:
            loss = loss + pc.l2_enc * weight_penalty(self.encoder)
        if pc.l2_dec:
            loss = loss + pc.l2_dec * weight_penalty(self.decoder)
        return loss

    def pretrain_loss(self, x, pc, generator=None) -> dict:
        """AE phase: the mean reconstruction error (the energy) plus the weight penalties."""
        recon = self.energy(x).mean()
        return {"loss": self.add_penalties(recon, pc), "recon": recon.detach()}

    @torch.no_grad()
    def predict(self, x, batch_size: int = 256):
        """Energies of a (large) tensor, computed in batches without gradients."""
        self.eval()
        out = [self.energy(x[i:i + batch_size].to(self.device)).float().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.empty(0)


class AE(_Base):
    """Plain autoencoder; its outlier score is the reconstruction error."""

    kind = "ae"

    @property
    def T(self):
        """The temperature: 1 (the AE and VAE have none to learn)."""
        return 1.0

    @torch.no_grad()
    def sample(self, n: int, generator=None):
        """Decoded random latents (uniform on the sphere when ``spherical``): what the AE
        would generate, for comparison with the NAE's samples."""
        z = torch.randn((n, *self.z_shape), generator=generator, device=self.device)
        if self.spherical:
            z = project_sphere(z)
        return self.decode(z)


class NAE(_Base):
    """Normalized Autoencoder: p(x) = exp(-E(x)/T) / Z with E the reconstruction error.

    The temperature is stored as log T (``log_temperature``): a buffer when fixed, a
    parameter when ``learn_temperature`` (the 2-D experiments learn it).
    """

    kind = "nae"

    def __init__(self, encoder, decoder, x_shape, z_dim, spherical=True, temperature=1.0,
                 learn_temperature=False, x_bound=(0.0, 1.0)):
        super().__init__(encoder, decoder, x_shape, z_dim, spherical, x_bound)
        log_t = torch.tensor(math.log(temperature), dtype=torch.float32)
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def T(self):
        """The temperature T of p(x) = exp(-E(x)/T) / Z (stored as log T)."""
        return self.log_temperature.exp()

    def loss(self, x, x_neg, pc) -> dict:
        """The NAE objective for data ``x`` and negative samples ``x_neg`` drawn from the model.

        The gradient of the negative log-likelihood of p(x) = exp(-E(x)/T) / Z is
        E[grad E(x+)] - E[grad E(x-)] (divided by T), with x- ~ p; so (paper eq. 5)::

            loss = mean E(x+) - mean E(x-) + gamma * mean E(x-)^2        (energy_difference)
            loss = (mean E(x+) - mean E(x-)) / T + gamma * mean E(x-)^2  (energy_difference_over_T,
                                                              the original NAE_L2_OMI)

        gamma * E(x-)^2 keeps the negative energies from growing without bound.  With a
        learnable temperature, energy_difference adds (mean E(x+) - mean E(x-)) / T with the energies
        detached: its gradient with respect to log T is the likelihood's, which moves T to
        the spread of the energies.  ``x_neg`` may hold fewer samples than ``x``
        (``sampler.n_negatives``): both means stay unbiased.  Plus the weight penalties
        and ``z_norm_reg`` * mean |z|^2 of the raw encoder outputs.
        """
        e_pos = self.energy(x).float()
        e_neg = self.energy(x_neg).float()
        T = self.T
        diff = e_pos.mean() - e_neg.mean()
        if pc.loss == "energy_difference_over_T":
            loss = diff / T + pc.gamma * (e_neg ** 2).mean()
        else:
            loss = diff + pc.gamma * (e_neg ** 2).mean()
            if isinstance(self.log_temperature, nn.Parameter):
                loss = loss + diff.detach() / T
        loss = self.add_penalties(loss, pc)
        if pc.z_norm_reg:
            z = torch.cat([self.encoder(x), self.encoder(x_neg)])
            loss = loss + pc.z_norm_reg * (z ** 2).mean()
        return {"loss": loss, "e_pos": e_pos.detach(), "e_neg": e_neg.detach(), "T": T.detach()}

    def sample(self, n: int, generator=None, replay: bool = False, z_steps=None, x_steps=None,
               return_chain: bool = False):
        """Draws ``n`` samples with the model's sampler (on-manifold by default).

        ``z_steps`` / ``x_steps`` override the chain lengths (the original's sampling
        script used 180 latent and 40 input steps for its figures).  With
        ``return_chain`` the intermediate results (z, x0 = dec(z), x) come back as a dict.
        """
        if self.sampler is None:
            raise RuntimeError("this NAE has no sampler; build it with nae.models.build_model")
        import dataclasses

        zc = self.sampler.cfg.z_chain if z_steps is None else dataclasses.replace(self.sampler.cfg.z_chain, n_steps=z_steps)
        xc = self.sampler.cfg.x_chain if x_steps is None else dataclasses.replace(self.sampler.cfg.x_chain, n_steps=x_steps)
        was_training = self.training
        self.eval()
        out = self.sampler.sample(self, n, generator=generator, replay=replay, z_chain=zc, x_chain=xc)
        self.train(was_training)
        return out if return_chain else out["x"]


class VAE(_Base):
    """Variational autoencoder (a baseline of the paper).

    The encoder outputs 2*z values (mean, log-variance).  Images use a Bernoulli-like
    decoder read as a Gaussian of fixed unit variance on the sigmoid mean; the score is
    the negative ELBO per dimension (one posterior sample in training, the posterior mean
    in evaluation).  For vector data the decoder is Gaussian with std ``decoder_sigma``.
    """

    kind = "vae"

    def __init__(self, encoder, decoder, x_shape, z_dim, decoder_sigma=0.5, learn_decoder_sigma=False,
                 x_bound=(0.0, 1.0)):
        super().__init__(encoder, decoder, x_shape, z_dim, spherical=False, x_bound=x_bound)
        log_s = torch.tensor(math.log(decoder_sigma), dtype=torch.float32)
        if learn_decoder_sigma:
            self.log_sigma = nn.Parameter(log_s)
        else:
            self.register_buffer("log_sigma", log_s)

    @property
    def T(self):
        """The temperature: 1 (the AE and VAE have none to learn)."""
        return 1.0

    def posterior(self, x):
        """(mean, log-variance) of q(z | x); the log-variance is clamped to [-20, 10]."""
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-20, 10)

    def encode(self, x):
        """The posterior mean of q(z | x), (B, z_dim, ...), used as the latent code."""
        return self.posterior(x)[0]

    def neg_elbo(self, x, sample: bool = True, generator=None):
        """The negative ELBO per dimension of each sample: one posterior sample when
        ``sample``, else the posterior mean (evaluation)."""
        mu, logvar = self.posterior(x)
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
        else:
            z = mu
        xhat = self.decode(z)
        d = x[0].numel()
        var = (2 * self.log_sigma).exp()
        nll = 0.5 * ((x - xhat) ** 2).flatten(1).sum(1) / var + d * (self.log_sigma + 0.5 * math.log(2 * math.pi))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)
        return (nll + kl) / d

    def energy(self, x):
        """The VAE's outlier score: the negative ELBO per dimension at the posterior mean."""
        return self.neg_elbo(x, sample=False)

    def pretrain_loss(self, x, pc, generator=None) -> dict:
        """The negative ELBO per dimension (one posterior sample) plus the weight penalties."""
        nelbo = self.neg_elbo(x, sample=True, generator=generator).mean()
        return {"loss": self.add_penalties(nelbo, pc), "recon": nelbo.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator=None):
        """Decoded samples of the N(0, I) prior."""
        z = torch.randn((n, *self.z_shape), generator=generator, device=self.device)
        return self.decode(z)


MODELS = {"nae": NAE, "ae": AE, "vae": VAE}


def build_model(cfg) -> nn.Module:
    """Builds the model of a :class:`nae.config.RunConfig` (networks, sampler)."""
    from .langevin import build_sampler

    m = cfg.model
    if m.kind not in MODELS:
        raise ConfigError(f"unknown model kind {m.kind!r}; choose one of {sorted(MODELS)}")
    x_chan = m.x_shape[0]
    enc_kw = dict(m.encoder)
    dec_kw = dict(m.decoder)
    enc_name, dec_name = enc_kw.pop("name"), dec_kw.pop("name")
    enc_out = 2 * m.z_dim if m.kind == "vae" else m.z_dim
    try:
        encoder = build_net(enc_name, x_chan, enc_out, **enc_kw)
        decoder = build_net(dec_name, m.z_dim, x_chan, **dec_kw)
    except TypeError as e:
        raise ConfigError(f"bad network options in model.encoder/model.decoder: {e}") from None
    if m.kind == "nae":
        model = NAE(encoder, decoder, m.x_shape, m.z_dim, m.spherical, m.temperature, m.learn_temperature, m.x_bound)
        model.sampler = build_sampler(cfg.sampler)
    elif m.kind == "ae":
        model = AE(encoder, decoder, m.x_shape, m.z_dim, m.spherical, m.x_bound)
        model.sampler = None
    else:
        model = VAE(encoder, decoder, m.x_shape, m.z_dim, m.decoder_sigma, m.learn_decoder_sigma, m.x_bound)
    return model
