"""The logic behind the interactive notebook: plain functions, and the widget panels.

* :func:`sample_with_trace`: the model's on-manifold sampler, keeping every step of both
  chains (for plotting a chain as it runs, and for animations; :class:`ChainTrace`);
* :func:`latent_circle`: decoded images along a great circle of the latent sphere;
* :func:`presets`: preset 28x28 inputs for the outlier-reconstruction playground;
* :func:`compare_reconstructions`: reconstructions and energies of several models;
* :func:`sampler_panel`, :func:`drawing_playground`: the notebook's widgets (sliders and a
  Draw button; a drawing canvas), wired to the functions above.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import torch

from ..langevin import langevin_chain
from ..nets import project_sphere


class ChainTrace:
    """A ``trace`` callback for :func:`nae.langevin.langevin_chain` that keeps the chain
    state (on the CPU) and its energies at the start and every ``every`` steps (and the
    last step of a chain of ``n_steps``)."""

    def __init__(self, energy, n_steps: int, every: int = 1):
        self.energy, self.n_steps, self.every = energy, n_steps, every
        self.frames, self.energies = [], []

    @torch.no_grad()
    def __call__(self, k: int, x: torch.Tensor) -> None:
        if k % self.every == 0 or k == self.n_steps:
            self.frames.append(x.detach().cpu())
            self.energies.append(self.energy(x).float().cpu())


def trace_chain(energy, x0: torch.Tensor, chain, temperature=1.0, generator=None, every: int = 1):
    """Runs ``chain`` from ``x0`` and returns (x_final, [x0, x_every, ...], energies (frames, n)):
    :func:`nae.langevin.langevin_chain` with a :class:`ChainTrace`."""
    tr = ChainTrace(energy, chain.n_steps, every)
    x = langevin_chain(energy, x0, chain, temperature, generator, trace=tr).x
    return x, tr.frames, torch.stack(tr.energies)


@dataclasses.dataclass
class SamplerSettings:
    """What the sampling widgets control."""

    z_steps: int = 10
    x_steps: int = 50
    z_step_size: float = 0.2
    x_step_size: float = 10.0
    z_noise: float = 0.05
    x_noise: float = 0.05
    temperature: float = 1.0
    replay: bool = False
    seed: int = 0

    @classmethod
    def from_model(cls, model, **changes) -> "SamplerSettings":
        """The settings of ``model``'s sampler config and temperature (a missing step size or noise
        filled in by step = noise^2 / 2), with ``changes`` applied."""
        z, x = model.sampler.cfg.z_chain, model.sampler.cfg.x_chain
        s = cls(z.n_steps, x.n_steps, z.step_size or z.noise_std ** 2 / 2, x.step_size or x.noise_std ** 2 / 2,
                z.noise_std or math.sqrt(2 * z.step_size), x.noise_std or math.sqrt(2 * x.step_size),
                float(torch.as_tensor(model.T).detach()))
        return dataclasses.replace(s, **changes)

    def __str__(self) -> str:
        """Three short lines (4 significant digits: a step of 0.1**2 / 2 reads 0.005, not 0.005000000000000001)."""
        return (f"latent chain: {self.z_steps} steps, step size {self.z_step_size:.4g}, noise {self.z_noise:.4g}\n"
                f"input chain: {self.x_steps} steps, step size {self.x_step_size:.4g}, noise {self.x_noise:.4g}\n"
                f"temperature {self.temperature:.4g}, replay buffer {'on' if self.replay else 'off'}, seed {self.seed}")


def sample_with_trace(model, n: int, settings: SamplerSettings, every: int = 1) -> dict:
    """On-manifold sampling (latent chain, decode, input chain) keeping every step.

    Returns ``{"z": final latents, "x0": decoded start, "x": samples, "z_frames",
    "z_energies" (steps+1, n), "x_frames", "x_energies" (steps+1, n)}``.
    """
    cfg = model.sampler.cfg
    g = torch.Generator(model.device).manual_seed(int(settings.seed))
    zc = dataclasses.replace(cfg.z_chain, n_steps=int(settings.z_steps), step_size=float(settings.z_step_size),
                             noise_std=float(settings.z_noise))
    xc = dataclasses.replace(cfg.x_chain, n_steps=int(settings.x_steps), step_size=float(settings.x_step_size),
                             noise_std=float(settings.x_noise))
    model.eval()
    traces = {"z": ChainTrace(model.latent_energy, zc.n_steps, every), "x": ChainTrace(model.energy, xc.n_steps, every)}
    res = model.sampler.sample(model, n, generator=g, replay=bool(settings.replay), z_chain=zc, x_chain=xc,
                               temperature=float(settings.temperature), push=False,
                               trace=lambda chain, k, x: traces[chain](k, x))
    return {"z": res["z"], "x0": res["x0"], "x": res["x"],
            "z_frames": traces["z"].frames, "z_energies": torch.stack(traces["z"].energies),
            "x_frames": traces["x"].frames, "x_energies": torch.stack(traces["x"].energies)}


@torch.no_grad()
def latent_circle(model, n_points: int = 16, seed: int = 0):
    """Decodes ``n_points`` latents on a random great circle of the latent sphere.

    Returns (angles, z (n, *z_shape), images, energies of the decoded images).
    """
    g = torch.Generator().manual_seed(seed)
    d = model.z_dim
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    v = torch.randn(d, generator=g)
    v = v - (v @ u) * u
    v = v / v.norm()
    theta = torch.linspace(0, 2 * math.pi, n_points + 1)[:-1]
    z = torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * v
    z = project_sphere(z).view(n_points, *model.z_shape).to(model.device)
    x = model.decode(z)
    return theta, z.cpu(), x.cpu(), model.energy(x).cpu()


def _stroke(img, r0, c0, r1, c1, width=2):
    n = max(abs(r1 - r0), abs(c1 - c0)) + 1
    for t in np.linspace(0, 1, n):
        r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
        img[max(r - width // 2, 0): r + (width + 1) // 2, max(c - width // 2, 0): c + (width + 1) // 2] = 1.0


def presets(size: int = 28, with_data: bool = True) -> dict:
    """Preset inputs in [0, 1], shape (size, size): synthetic outliers, and (when the data
    sets are found) an MNIST digit, a FashionMNIST item and an Omniglot character."""
    blank = np.zeros((size, size), np.float32)
    out = {"blank": blank, "constant grey": np.full((size, size), 0.5, np.float32),
           "white": np.ones((size, size), np.float32)}
    dots = blank.copy()
    for r, c in [(7, 7), (7, 20), (20, 7), (20, 20), (13, 13)]:
        dots[r - 1:r + 2, c - 1:c + 2] = 1.0
    out["dots"] = dots
    minus = blank.copy()
    minus[12:16, 6:22] = 1.0
    out["minus sign"] = minus
    one = blank.copy()
    _stroke(one, 5, 14, 22, 14, width=3)
    out["stroke (like a 1)"] = one
    if with_data:
        from .. import data as D
        from ..errors import DataError

        for label, name in (("MNIST digit", "MNIST"), ("FashionMNIST item", "FashionMNIST"),
                            ("Omniglot character", "Omniglot")):
            try:
                ds = D.load_dataset(name, "test", size=size, channels=1, n=1)
                out[label] = ds.as_float()[0, 0].numpy()
            except DataError:
                pass
    return out


@torch.no_grad()
def compare_reconstructions(models: dict, image) -> dict:
    """``{name: (reconstruction (H, W) array, energy float)}`` for a (H, W) input in [0, 1]."""
    x = torch.as_tensor(np.asarray(image, np.float32)).clamp(0, 1)[None, None]
    res = {}
    for name, m in models.items():
        xx = x.to(m.device)
        res[name] = (m.reconstruct(xx)[0, 0].cpu().numpy(), float(m.energy(xx)[0]))
    return res


def energy_percentile(model, energy: float, reference: torch.Tensor, batch_size: int = 256) -> float:
    """Share of ``reference`` inputs (e.g. MNIST test images) with a lower energy: 0.5 = a
    typical inlier, 1.0 = more anomalous than every reference input."""
    e = model.predict(reference, batch_size)
    return float((e < energy).float().mean())


_FA_LINK = '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">'
_BUTTON_GLYPHS = {"fast-backward": "\u23ee", "step-backward": "\u25c0", "play": "\u25b6", "pause": "\u23f8",
                  "step-forward": "\u25b6|", "fast-forward": "\u23ed", "minus": "\u2212", "plus": "+"}


def animation_html(anim) -> str:
    """``anim.to_jshtml()`` without the font-awesome stylesheet that matplotlib loads
    from a CDN: the player's buttons get plain unicode glyphs, so the page works offline."""
    html = anim.to_jshtml()
    css = "".join(f".anim-buttons .fa-{k}:before{{content:\"{v}\";font-style:normal}}"
                  for k, v in _BUTTON_GLYPHS.items())
    return html.replace(_FA_LINK, f"<style>{css}</style>")


def chain_animation(frames, energies: Optional[torch.Tensor] = None, kind: str = "images", background=None,
                    lim: float = 4.0, nrow: int = 8, interval: int = 150):
    """A matplotlib animation of a chain (for ``anim.to_jshtml()`` in the static book).

    ``kind="images"``: frames are (n, C, H, W) batches shown as a grid (with the mean
    energy in the title); ``kind="points"``: frames are (n, 2) batches drawn over
    ``background`` = (extent, 2-D array), e.g. the model's density on a grid.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    from ..viz import image_grid

    if kind == "points":
        fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=72)  # small frames: the HTML embeds every one
    else:  # images: about 80 px per image, so that digits are legible in the static book
        n = frames[0].shape[0]
        cols = min(nrow, n)
        rows = -(-n // cols)
        fig, ax = plt.subplots(figsize=(1.1 * cols, 1.1 * rows + 0.4), dpi=72)
    if kind == "points":
        if background is not None:
            extent, img = background
            ax.imshow(img, origin="lower", extent=extent, cmap="viridis")
        scat = ax.scatter(frames[0][:, 0], frames[0][:, 1], s=6, c="w", edgecolors="k", linewidths=0.3)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    else:
        g = image_grid(frames[0], nrow)
        im = ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    title = ax.set_title("")

    def update(i):
        if kind == "points":
            scat.set_offsets(frames[i].numpy())
        else:
            g = image_grid(frames[i], nrow)
            im.set_data(g[..., 0] if g.shape[-1] == 1 else g)
        t = f"step {i}/{len(frames) - 1}"
        if energies is not None:
            t += f", mean E = {float(energies[i].mean()):.4f}"
        title.set_text(t)
        return (title,)

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    plt.close(fig)
    return anim


# ---------------------------------------------------------------------------------
# widgets (ipywidgets / ipycanvas are imported only when these are called)

#: slider descriptions are shown in full, and every readout shows its value
_STYLE = {"description_width": "9.5em"}
_LAYOUT = {"width": "26em"}


def figure_png(fig, dpi: int = 72):
    """A matplotlib figure as an IPython PNG image (closed afterwards)."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue())


def _sampler_figure(model, res, settings, extent=(-4, 4, -4, 4)):
    """Samples (over the density for 2-D models) and the mean energy along both chains."""
    import matplotlib.pyplot as plt

    from ..toy2d import density_on_grid
    from ..viz import show_images

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    if model.x_shape == (2,):
        axes[0].imshow(density_on_grid(model.energy, settings.temperature), origin="lower", extent=extent)
        axes[0].scatter(*res["x"].T.numpy(), s=5, c="w", edgecolors="k", linewidths=0.3)
        axes[0].set_title("samples over exp(-E/T)")
    else:
        show_images(axes[0], res["x"], nrow=4, title="samples")
    ez, ex = res["z_energies"].mean(1), res["x_energies"].mean(1)
    axes[1].plot(range(len(ez)), ez, label="latent chain E(dec(z))")
    axes[1].plot(range(len(ez) - 1, len(ez) - 1 + len(ex)), ex, label="input chain E(x)")
    axes[1].set_xlabel("chain step")
    axes[1].set_ylabel("mean energy")
    axes[1].legend()
    return fig


def sampler_panel(models: dict, extent=(-4, 4, -4, 4)):
    """Sliders for :class:`SamplerSettings`, a Draw button and the resulting figure.

    Choosing a model resets the sliders to its training chains (the image models' chains
    are shortened so that a draw takes seconds on a CPU).  Returns the widget."""
    import ipywidgets as W

    kw = dict(style=_STYLE, layout=_LAYOUT)
    log = dict(base=10, readout_format=".3g", **kw)
    choice = W.Dropdown(options=list(models), description="model", **kw)
    z_steps = W.IntSlider(10, 0, 50, description="latent steps", **kw)
    x_steps = W.IntSlider(20, 0, 100, description="input steps", **kw)
    z_step = W.FloatLogSlider(0.2, min=-3, max=1, description="latent step s", **log)
    x_step = W.FloatLogSlider(10.0, min=-3, max=2, description="input step s", **log)
    z_noise = W.FloatLogSlider(0.05, min=-3, max=0.7, description="latent noise σ", **log)
    x_noise = W.FloatLogSlider(0.05, min=-3, max=0.7, description="input noise σ", **log)
    temp = W.FloatLogSlider(1.0, min=-2, max=1, description="temperature T", **log)
    replay = W.Checkbox(False, description="replay buffer", **kw)
    seed = W.IntText(0, description="seed", **kw)
    draw = W.Button(description="Draw", button_style="primary")
    out = W.Output()

    def on_model(change=None):
        m = models[choice.value]
        s = SamplerSettings.from_model(m)
        small = m.x_shape == (2,)
        z_step.value, z_noise.value = s.z_step_size, s.z_noise
        z_steps.value = s.z_steps if small else min(s.z_steps, 5)
        x_steps.value = min(s.x_steps, 30 if small else 10)
        x_step.value, x_noise.value, temp.value = s.x_step_size, s.x_noise, s.temperature

    def on_draw(_=None):
        m = models[choice.value]
        s = SamplerSettings(z_steps.value, x_steps.value, z_step.value, x_step.value, z_noise.value,
                            x_noise.value, temp.value, replay.value, seed.value)
        res = sample_with_trace(m, 300 if m.x_shape == (2,) else 8, s, every=1)
        out.outputs = ()
        out.append_display_data(figure_png(_sampler_figure(m, res, s, extent)))

    choice.observe(on_model, "value")
    draw.on_click(on_draw)
    on_model()
    on_draw()
    # the controls keep their width (labels and readouts stay visible); on a narrow page
    # (the static book) the figure moves below them instead of squeezing the sliders
    controls = W.VBox([choice, z_steps, z_step, z_noise, x_steps, x_step, x_noise, temp, replay, seed, draw],
                      layout=W.Layout(min_width=_LAYOUT["width"], flex="0 0 auto"))
    return W.HBox([controls, out], layout=W.Layout(flex_flow="row wrap"))


def drawing_playground(show, presets: dict, scale: int = 10, size: int = 28):
    """A ``size`` x ``size`` drawing canvas (ipycanvas) with a preset menu and a Clear button.

    ``show(image, label)`` is called with the (size, size) array in [0, 1] after every
    stroke, preset or clear, inside an Output widget next to the canvas.  Returns the widget."""
    import ipywidgets as W
    from ipycanvas import Canvas

    canvas = Canvas(width=size * scale, height=size * scale)
    state = {"image": np.zeros((size, size), np.float32), "down": False, "label": "your drawing"}
    preset = W.Dropdown(options=["(draw)"] + list(presets), description="preset", style=_STYLE)
    clear = W.Button(description="Clear")
    out = W.Output()

    def paint(image):
        state["image"] = np.asarray(image, np.float32).copy()
        canvas.fill_style = "black"
        canvas.fill_rect(0, 0, canvas.width, canvas.height)
        ys, xs = np.nonzero(state["image"] > 0.05)
        for y, x in zip(ys, xs):
            v = int(255 * state["image"][y, x])
            canvas.fill_style = f"rgb({v},{v},{v})"
            canvas.fill_rect(int(x) * scale, int(y) * scale, scale, scale)

    def refresh():
        with out:
            out.clear_output(wait=True)
            show(state["image"], state["label"])

    def stroke(x, y):
        r, c = int(y // scale), int(x // scale)
        state["image"][max(r - 1, 0):r + 1, max(c - 1, 0):c + 1] = 1.0
        canvas.fill_style = "white"
        canvas.fill_rect(max(c - 1, 0) * scale, max(r - 1, 0) * scale, 2 * scale, 2 * scale)

    def on_down(x, y):
        state["down"], state["label"] = True, "your drawing"
        stroke(x, y)

    def on_move(x, y):
        if state["down"]:
            stroke(x, y)

    def on_up(x, y):
        state["down"] = False
        refresh()

    def on_preset(change):
        if change["new"] in presets:
            state["label"] = change["new"]
            paint(presets[change["new"]])
            refresh()

    def on_clear(_):
        state["label"] = "your drawing"
        paint(np.zeros((size, size), np.float32))
        preset.value = "(draw)"
        refresh()

    canvas.on_mouse_down(on_down)
    canvas.on_mouse_move(on_move)
    canvas.on_mouse_up(on_up)
    preset.observe(on_preset, "value")
    clear.on_click(on_clear)
    paint(state["image"])
    refresh()
    return W.HBox([W.VBox([preset, canvas, clear]), out])
