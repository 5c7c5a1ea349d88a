"""Figures and tables of the MNIST notebook (``notebooks/02_mnist.ipynb``).

* :func:`example_images`: a few fixed test images of each set (inliers and outliers);
* :func:`reconstruction_figure`: inputs next to their AE and NAE reconstructions, with
  the mean reconstruction error (the energy) of each group, the paper's opening figure;
* :func:`evaluate_pair`: outlier-detection results of an NAE and its AE baseline;
* :func:`auroc_markdown`: an AUROC table, one column per model;
* :func:`holdout_markdown` / :func:`holdout_bar_chart`: the hold-out experiment, one row
  (one pair of bars) per digit, with digits without a model marked as such;
* :func:`early_stopping_ae`: a digit's AE trained to the original's early stopping (the
  published one, or the MNIST campaign's kept AE of a run that was not published);
* :func:`sample_figure`: a grid of samples;
* :func:`ae_failure` / :func:`ae_failure_markdown`: the outliers each model scores below
  the median inlier energy (the paper's point: the AE reconstructs part of every outlier set
  as well as the data), with the lowest-energy outliers to show.

Tables are Markdown strings (show them with ``IPython.display.Markdown``); figures are
matplotlib figures of modest size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from ..evaluate import validation_auroc  # noqa: F401  (re-exported: notebook 02 scores the AEs with it)
from ..viz import show_images

#: what the hold-out table and chart say for a digit without a trained model
NOT_TRAINED = "not trained yet (budget)"


def example_images(cfg, names: Sequence[str], n: int = 4, seed: int = 0) -> dict:
    """``{name: (n, C, H, W) float tensor}``: ``n`` test images of each set, chosen by ``seed``.

    ``names`` may hold the in-distribution set of ``cfg`` (its own name, e.g. "MNIST"),
    outlier sets, and "heldout" (hold-out configs).  The same seed gives the same images.
    """
    from ..data import indist_test_set
    from ..data import outlier_set

    out = {}
    for name in names:
        ds = indist_test_set(cfg) if name == cfg.data.indist else outlier_set(cfg, name, "test")
        rng = np.random.default_rng([seed, len(ds)])
        idx = np.sort(rng.choice(len(ds), size=min(n, len(ds)), replace=False))
        out[name] = ds.as_float(idx)
    return out


@torch.no_grad()
def reconstruction_figure(images: Mapping[str, torch.Tensor], models: Mapping[str, torch.nn.Module],
                          nrow: int = 2, cell: float = 1.6):
    """One column per set: the inputs (top row), then each model's reconstructions.

    Under each reconstruction: the mean energy E(x) = mean squared error of that group.
    A good outlier detector reconstructs the first column (inliers) and fails on the rest.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    names = list(images)
    rows = ["input", *models]
    fig, axes = plt.subplots(len(rows), len(names), figsize=(cell * len(names), cell * 1.15 * len(rows)),
                             squeeze=False)
    for j, name in enumerate(names):
        x = images[name]
        show_images(axes[0, j], x, nrow=nrow, title=name)
        for i, (label, model) in enumerate(models.items(), start=1):
            model.eval()
            xr = model.reconstruct(x.to(model.device)).float().cpu()
            e = ((x - xr) ** 2).flatten(1).mean(1)
            show_images(axes[i, j], xr, nrow=nrow)
            axes[i, j].set_xlabel(f"E = {e.mean():.3f}", fontsize=9)
    for i, label in enumerate(rows):
        axes[i, 0].set_ylabel(label, fontsize=11)
    fig.tight_layout()
    return fig


def evaluate_pair(models: Mapping[str, torch.nn.Module], cfg, ood: Sequence[str], n: Optional[int] = None,
                  precision: str = "fp32") -> dict:
    """``{label: evaluate_model(...)}`` for each model, on the same test images; in fp32 by
    default, as the manifests' metrics are measured, so the book's tables do not depend on
    whether the machine that executed the notebook has native bf16."""
    from ..evaluate import evaluate_model

    return {label: evaluate_model(m, cfg, list(ood), n=n, precision=precision) for label, m in models.items()}


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def auroc_markdown(results: Mapping[str, dict], bold_best: bool = True) -> str:
    """A Markdown AUROC table: one row per outlier set, one column per model.

    ``results`` maps a model label to an :func:`nae.evaluate.evaluate_model` result.
    The best value of each row is bold (ties: all of them).
    """
    labels = list(results)
    if not labels:
        raise ValueError("no results to tabulate")
    first = results[labels[0]]
    names = list(first["auroc"])
    head = "| outlier set | n | " + " | ".join(f"AUROC {lb}" for lb in labels) + " |"
    sep = "|---|---:|" + "---:|" * len(labels)
    lines = [f"In-distribution: {first['in_distribution']} test set, n = {first['n_in']}.", "", head, sep]
    for name in names:
        vals = [results[lb]["auroc"].get(name) for lb in labels]
        present = [v for v in vals if v is not None]
        best = max(present) if present else None
        cells = []
        for v in vals:
            s = _fmt(v)
            if bold_best and v is not None and len(labels) > 1 and round(v, 3) == round(best, 3):
                s = f"**{s}**"
            cells.append(s)
        n = first["n"].get(name, "–")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def holdout_markdown(rows: Mapping[int, Optional[Mapping[str, float]]], labels: Sequence[str] = ("AE", "NAE"),
                     digits: Sequence[int] = range(10), notes: Optional[Mapping[int, str]] = None) -> str:
    """The hold-out table: one row per digit, AUROC of each model for detecting that digit.

    ``rows[d]`` is ``{label: auroc}`` for a trained digit and ``None`` (or absent) for a
    digit without a model, which is shown as :data:`NOT_TRAINED`; no number is made up.
    ``notes[d]`` adds a last column (e.g. budget and wall time).  The mean row has four decimals.
    """
    notes = notes or {}
    head = "| held-out digit | " + " | ".join(f"AUROC {lb}" for lb in labels) + " | |"
    sep = "|---:|" + "---:|" * len(labels) + "---|"
    lines = [head, sep]
    for d in digits:
        r = rows.get(d)
        if not r:
            lines.append(f"| {d} | " + " | ".join("–" for _ in labels) + f" | {NOT_TRAINED} |")
            continue
        vals = [r.get(lb) for lb in labels]
        present = [v for v in vals if v is not None]
        best = max(present) if present else None
        cells = [f"**{_fmt(v)}**" if v is not None and len(labels) > 1 and round(v, 3) == round(best, 3) else _fmt(v)
                 for v in vals]
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {notes.get(d, '')} |")
    trained = [r for d, r in rows.items() if r and d in digits]
    if trained:
        cells = []
        for lb in labels:
            vals = [r[lb] for r in trained if r.get(lb) is not None]
            # four decimals: a mean of 0.8996 must not read as a target of 0.900 met; a column
            # with fewer digits than the others says over how many its mean is
            cells.append("–" if not vals else _fmt(np.mean(vals), 4)
                         + ("" if len(vals) == len(trained) else f" ({len(vals)} digits)"))
        lines.append(f"| mean of {len(trained)} | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def early_stopping_ae(ae, milestone=None, patience: int = 4) -> tuple:
    """The AE of a hold-out digit trained to the original's early stopping, and where it comes from.

    ``ae`` is the published model's AE (``load_pretrained(name, which="ae")``): when its phase ended
    on early stopping it is the one.  Otherwise ``milestone``, a folder kept by the MNIST campaign
    (``benchmarks/results/mnist_campaign/RUN/``: ``config.yml``, ``ae.pt`` and the AE phase's log
    ``metrics_ae.jsonl``) for a later run of the same digit whose NAE was not published (or is still
    training), gives it,
    when its phase ended on early stopping too.  Returns ``(model, text)``, or ``(None, text)``
    saying why there is none yet; no AE is made up.
    """
    from ..diagnostics import ae_phase_of_log, ae_phase_short
    from ..run import load_run

    if "early stopping" in ae_phase_short(ae.run_dir, patience=patience):
        return ae, "the published model's AE"
    if milestone is None or not (Path(milestone) / "ae.pt").is_file():
        # not the chapters' "not trained yet" (nae.tutorial.image_chapter.NOT_TRAINED): the digit has a model
        return None, "none yet (its campaign run has not finished its AE phase)"
    milestone = Path(milestone)
    info = ae_phase_of_log(milestone / "metrics_ae.jsonl", patience)
    if not info["early_stopped"]:
        return None, f"{milestone.name}: its AE phase did not end on early stopping"
    # a compared run has its decision record (scripts/publish_if_better.py: publish_decision*.json)
    nae_state = ("its NAE was not published" if any(milestone.glob("publish_decision*.json"))
                 else "its NAE phase still training")
    return load_run(milestone, which="ae"), f"{milestone.name} ({info['epochs']} epochs; {nae_state})"


def holdout_bar_chart(rows: Mapping[int, Optional[Mapping[str, float]]], labels: Sequence[str] = ("AE", "NAE"),
                      digits: Sequence[int] = range(10), figsize=(7.5, 3.0), title: Optional[str] = None):
    """Bars of AUROC per held-out digit, the models side by side; digits without a model
    get a grey "n/a" mark instead of bars.  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    digits = list(digits)
    fig, ax = plt.subplots(figsize=figsize)
    width = 0.8 / len(labels)
    colors = ["tab:gray", "tab:red", "tab:blue", "tab:green"]
    for k, lb in enumerate(labels):
        xs, ys = [], []
        for i, d in enumerate(digits):
            r = rows.get(d)
            if r and r.get(lb) is not None:
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(r[lb])
        ax.bar(xs, ys, width=width, label=lb, color=colors[k % len(colors)])
    for i, d in enumerate(digits):
        if not rows.get(d):
            ax.text(i, 0.03, "n/a", ha="center", va="bottom", fontsize=8, color="0.4", rotation=90)
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(digits)))
    ax.set_xticklabels([str(d) for d in digits])
    ax.set_xlabel("held-out digit")
    return _finish_auroc_axes(fig, ax, "AUROC", title)


def _finish_auroc_axes(fig, ax, ylabel: str, title: Optional[str]):
    """The common end of the AUROC plots: [0, 1] axis, legend outside on the right, title."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def sample_figure(x: torch.Tensor, nrow: int = 8, title: Optional[str] = None, size: Optional[float] = None):
    """A grid of images (samples) in one figure, ``size`` inches wide (default: one inch per
    column, so that a 32x32 or 64x64 sample stays recognisable on the page)."""
    import matplotlib.pyplot as plt

    n = x.shape[0]
    rows = (n + nrow - 1) // nrow
    size = size or float(min(nrow, n))
    fig, ax = plt.subplots(figsize=(size, size * rows / min(nrow, n)))
    show_images(ax, x, nrow=nrow, title=title)
    fig.tight_layout()
    return fig


def validation_curves(run_dirs: Mapping[int, "Path"], key: str = "auroc_heldout", phase: str = "nae") -> dict:
    """``{digit: [(iteration, value), ...]}`` from each run's ``metrics.jsonl`` (the periodic
    validations: by default the AUROC of the held-out digit on the validation split).  For a
    published model that continued earlier runs the whole history counts, the iterations of each
    continuation counted on from where the run before it ended (``read_metrics(history=True)``)."""
    from ..diagnostics import read_metrics, series

    out = {}
    for d, run_dir in run_dirs.items():
        if not (Path(run_dir) / "metrics.jsonl").is_file():
            continue
        xs, ys = series(read_metrics(run_dir, history=True), key, event="validation", phase=phase)
        if len(xs):
            out[d] = [(int(x), float(y)) for x, y in zip(xs, ys)]
    return out


def continuations_markdown(*folders, only: Optional[str] = None, key: Optional[str] = None) -> str:
    """The continuations tried and what became of them: one row per ``publish_decision.json``
    (written by ``scripts/publish_if_better.py``) in the sub-folders of each of ``folders``, named by its
    folder, with the weights compared (``final`` or their moving ``average``) and the validation
    AUROC (which decided) and test AUROC (for information), each as before → after: the model it
    continued, then the continued model.  ``only``: keep the records of the published names that
    start with it (e.g. ``"mnist_holdout"``).  ``key``: the outlier set the AUROC columns show
    (default: the held-out digit where there is one, else the first watched set); ``"mean"``:
    the mean over the watched sets, the number the decision compared (for models watched on
    several sets, such as CIFAR-10's ConstantGray and Constant).  The published model's name is
    not a column (the table must fit the page): name the folders after it.  "NAE iterations": the
    run's own, after those of the model it continued where the record says them (``80 + 52``;
    a run that resumed the published run itself counts them all in its own log)."""
    import json

    recs = [(json.loads(f.read_text()), f.parent.name) for folder in folders
            for f in Path(folder).glob("*/publish_decision*.json")]
    recs = [r for r in recs if only is None or r[0]["name"].startswith(only)]
    if not recs:
        return f"no continuation records in {', '.join(map(str, folders))}"

    def pick(aurocs: dict, watched) -> Optional[float]:
        if key != "mean":
            return aurocs.get(key or ("heldout" if "heldout" in watched else next(iter(watched))))
        vals = [aurocs.get(k) for k in watched]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)

    what = "" if key is None else (" (mean of the watched sets)" if key == "mean" else f" ({key})")
    head = (f"| continuation | weights | NAE iterations | validation AUROC{what} | test AUROC{what} | kept |\n"
            "|---|---|---:|---:|---:|---|")
    lines = [head]
    for rec, name in sorted(recs, key=lambda r: (r[0]["name"], r[1], r[0].get("weights", "final"))):
        v, t = rec["validation_auroc"], rec["test_auroc"]
        watched = list(v["run"])
        verdict = ("yes" if rec["published"] else "compared only" if rec["better"]  # better, but a dry run
                   else "no: not better")
        weights = "average" if rec.get("weights", "final") == "ema" else "final"
        before = rec.get("nae_iterations_before")
        its = f"{before:,} + {rec['nae_iterations']:,}" if before else f"{rec['nae_iterations']:,}"
        lines.append(f"| {name} | {weights} | {its} | "
                     f"{_fmt(pick(v['against'], watched))} → {_fmt(pick(v['run'], watched))} | "
                     f"{_fmt(pick(t['against'], watched))} → {_fmt(pick(t['run'], watched))} | "
                     f"{verdict} |")
    return "\n".join(lines)


def decision_markdown(record, labels: Sequence[str] = ("before", "after")) -> str:
    """One comparison of ``scripts/publish_if_better.py`` (its ``publish_decision*.json``, a path
    or the loaded dict) set by set: the validation AUROC of each watched set (which decided),
    then the test AUROC of every outlier set (for information; "absent" where a set is not on the
    machine), for the model continued (``labels[0]``) and the continuation (``labels[1]``)."""
    import json

    rec = json.loads(Path(record).read_text()) if isinstance(record, (str, Path)) else record
    v, t = rec["validation_auroc"], rec["test_auroc"]
    lines = [f"| split: outlier set | {labels[0]} | {labels[1]} |", "|---|---:|---:|"]
    for k in v["run"]:
        lines.append(f"| validation: {k} | {_fmt(v['against'].get(k))} | {_fmt(v['run'].get(k))} |")
    for k in t["run"]:
        a, b = t["against"].get(k), t["run"].get(k)
        cell = lambda x: "absent" if a is None and b is None else _fmt(x)
        lines.append(f"| test: {k} | {cell(a)} | {cell(b)} |")
    return "\n".join(lines)


def validation_curves_figure(curves: Mapping[int, Sequence], ae_auroc: Optional[Mapping[int, float]] = None,
                             figsize=(7.5, 3.2), title: Optional[str] = None):
    """One line per digit: validation AUROC against NAE iteration, starting (iteration 0)
    at the AE's AUROC when ``ae_auroc`` gives it.  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    cmap = plt.get_cmap("tab10")
    for d in sorted(curves):
        pts = list(curves[d])
        if ae_auroc and ae_auroc.get(d) is not None:
            pts = [(0, ae_auroc[d])] + pts
        xs, ys = zip(*pts)
        ax.plot(xs, ys, "o-", ms=3, lw=1.2, color=cmap(d % 10), label=f"digit {d}")
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xlabel("NAE iteration (0 = the pre-trained AE)" if ae_auroc else "NAE iteration")
    return _finish_auroc_axes(fig, ax, "AUROC of the held-out digit", title)


def per_digit_energies(models: Mapping[str, torch.nn.Module], heldout: int, n: Optional[int] = None) -> dict:
    """Where a hold-out model puts each MNIST digit: for every model, the mean energy of
    the test images of each digit and the AUROC of the held-out digit against each inlier
    digit alone (below 0.5: that inlier digit scores as *more* anomalous than the held-out
    one).  ``n``: at most this many test images (the first n)."""
    from ..data import load_dataset
    from ..metrics import auroc

    test = load_dataset("MNIST", "test", n=n)
    x, y = test.as_float(), np.asarray(test.labels)
    out = {}
    for label, model in models.items():
        with torch.no_grad():
            e = model.predict(x).numpy()
        out[label] = {"mean_energy": {k: float(e[y == k].mean()) for k in range(10) if (y == k).any()},
                      "auroc_vs_digit": {k: float(auroc(e[y == k], e[y == heldout])) for k in range(10)
                                         if k != heldout and (y == k).any() and (y == heldout).any()}}
    return out


def per_digit_markdown(report: Mapping[str, dict], heldout: int) -> str:
    """The table of :func:`per_digit_energies`: one row per digit, one energy and one
    AUROC column per model."""
    labels = list(report)
    head = ("| digit | " + " | ".join(f"mean E {lb}" for lb in labels) + " | "
            + " | ".join(f"AUROC {heldout} vs digit, {lb}" for lb in labels) + " |")
    lines = [head, "|---:|" + "---:|" * (2 * len(labels))]
    for k in range(10):
        es = [report[lb]["mean_energy"].get(k) for lb in labels]
        aus = [report[lb]["auroc_vs_digit"].get(k) for lb in labels]
        name = f"**{k}** (held out)" if k == heldout else str(k)
        lines.append(f"| {name} | " + " | ".join(_fmt(v, 4) for v in es) + " | "
                     + " | ".join(_fmt(v, 2) if v is not None else "" for v in aus) + " |")
    return "\n".join(lines)


@torch.no_grad()
def ae_failure(models: Mapping[str, torch.nn.Module], cfg, names: Sequence[str], k: int = 8,
               n: Optional[int] = None, rank_by: Optional[str] = None) -> dict:
    """Where the AE fails, in the paper's sense: outliers it reconstructs as well as the data.

    For each outlier set (``names``, "heldout" included) and each model: the fraction of
    the outliers whose energy lies below the *median* energy of the in-distribution test
    images (these outliers look more normal than half the data) and FPR@95, the share of
    the outliers accepted when 95% of the inliers are kept (:func:`nae.metrics.fpr_at_95_tpr`,
    the ``fpr95`` of ``python -m nae evaluate`` and of the manifest).  ``images[name]`` holds
    the ``k`` outliers with the lowest energy under ``rank_by`` (default: the first model,
    the AE), the ones to show with :func:`reconstruction_figure`.  ``n``: at most this many
    test images of each set.
    """
    from ..data import indist_test_set
    from ..data import outlier_set
    from ..metrics import fpr_at_95_tpr

    labels = list(models)
    rank_by = rank_by or labels[0]
    x_in = indist_test_set(cfg, n).as_float()
    e_in = {lb: m.predict(x_in).numpy() for lb, m in models.items()}
    out = {"n_in": int(len(x_in)), "sets": {}, "images": {}, "labels": labels, "rank_by": rank_by}
    for name in names:
        x = outlier_set(cfg, name, "test", n=n).as_float()
        row = {"n": int(len(x))}
        for lb, m in models.items():
            e = m.predict(x).numpy()
            row[lb] = {"below_median": float((e < np.median(e_in[lb])).mean()),
                       "fpr95": fpr_at_95_tpr(e_in[lb], e)}
            if lb == rank_by:
                order = np.argsort(e, kind="stable")[:k]
                out["images"][name] = x[torch.as_tensor(order)]
        out["sets"][name] = row
    return out


def ae_failure_markdown(report: Mapping) -> str:
    """The table of :func:`ae_failure`: per outlier set, each model's fraction of outliers
    below the median inlier energy and its FPR@95 (lower is better for both)."""
    labels = report["labels"]
    head = ("| outlier set | n | " + " | ".join(f"below median, {lb}" for lb in labels) + " | "
            + " | ".join(f"FPR@95, {lb}" for lb in labels) + " |")
    lines = [f"In-distribution test images: n = {report['n_in']}. Lower is better in every column.", "",
             head, "|---|---:|" + "---:|" * (2 * len(labels))]
    for name, row in report["sets"].items():
        lines.append(f"| {name} | {row['n']} | " + " | ".join(f"{row[lb]['below_median']:.3f}" for lb in labels)
                     + " | " + " | ".join(f"{row[lb]['fpr95']:.3f}" for lb in labels) + " |")
    return "\n".join(lines)


def energy_curves_grid(run_dirs: Mapping[int, "Path"], ncols: int = 5, size: float = 2.2):
    """One small panel per hold-out model: E(x+) (data) and E(x-) (negatives) against the NAE
    iteration (running means of the logged steps), titled with the digit and the equilibrium
    ratio mean E(x-) / mean E(x+) over the last tenth of the last run.  Each panel has its own
    iteration axis (the runs differ in length by 30x) and a linear energy axis in units of 1e-2.
    A continued model shows its whole history, a dotted line where each continuation began.
    Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..diagnostics import equilibrium, ratio_text, read_metrics, segment_starts, series

    digits = sorted(run_dirs)
    nrows = max(1, -(-len(digits) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 0.9 * nrows), squeeze=False)
    for ax in axes.flat[len(digits):]:
        ax.axis("off")
    for ax, d in zip(axes.flat, digits):
        rec = read_metrics(run_dirs[d], history=True)
        for key, color in (("e_pos", "tab:blue"), ("e_neg", "tab:red")):
            xs, ys = series(rec, key)
            if len(xs):
                w = max(1, len(ys) // 10)
                ax.plot(xs[w - 1:], np.convolve(ys, np.ones(w) / w, mode="valid"), lw=1.4, color=color,
                        label="E(x+)" if key == "e_pos" else "E(x-)")
        for x in segment_starts(rec):
            ax.axvline(x, color="0.5", lw=0.8, ls=":")
        eq = equilibrium(run_dirs[d])
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, -2))
        ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.set_title(f"digit {d}: ratio {ratio_text(eq)}" if eq["ratio"] is not None else f"digit {d}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_offset_text().set_fontsize(7)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.supxlabel("NAE iteration", fontsize=9)
    fig.tight_layout()
    return fig


def lever_curves_figure(runs: Mapping[str, "Path"], key: str = "auroc_heldout", figsize=(7.5, 3.2),
                        title: Optional[str] = None, reference: Optional[Mapping[str, float]] = None,
                        ylim: Optional[tuple] = None):
    """Validation AUROC against NAE iteration, one line per run (``{label: run_dir}``): how
    runs that differ in one setting (learning rate, negatives per step) compare.  A value may
    be ``(run_dir, key)`` to plot another logged key of that run, e.g. ``"ema_auroc_heldout"``
    (the moving average of its weights, ``train.nae.ema``) next to its own ``"auroc_heldout"``.
    ``reference``: ``{label: value}`` drawn as dashed horizontal lines (e.g. the AE's AUROC on
    the same images); ``ylim``: the y range (default [0, 1]).  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    from ..diagnostics import read_metrics, series

    fig, ax = plt.subplots(figsize=figsize)
    for label, run in runs.items():
        run, k = run if isinstance(run, tuple) else (run, key)
        xs, ys = series(read_metrics(run), k, event="validation")
        ax.plot(xs, ys, "o-", ms=3, lw=1.2, label=label)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{len(runs) + i}", label=label)
    ax.set_xlabel("NAE iteration")
    fig = _finish_auroc_axes(fig, ax, "validation AUROC", title)
    if ylim:
        ax.set_ylim(*ylim)
    return fig


def spread_markdown(curves: Mapping[str, tuple], from_step: int = 0) -> str:
    """How much a validation curve moves: for each ``{label: (run_dir, key)}``, over the
    validations at or after ``from_step``, their number, mean, standard deviation (from one
    validation to the next), range and last value, as a markdown table."""
    from ..diagnostics import read_metrics, series

    lines = ["| curve | validations | mean | std | min | max | last |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, (run, key) in curves.items():
        xs, ys = series(read_metrics(run), key, event="validation")
        ys = ys[xs >= from_step]
        if not len(ys):
            lines.append(f"| {label} | 0 | | | | | |")
            continue
        lines.append(f"| {label} | {len(ys)} | {ys.mean():.3f} | {ys.std():.3f} | {ys.min():.3f} | "
                     f"{ys.max():.3f} | {ys[-1]:.3f} |")
    return "\n".join(lines)
