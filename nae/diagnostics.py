"""Is an NAE run near equilibrium?  Read a run's ``metrics.jsonl`` and say so.

Maximum-likelihood training of an energy-based model has reached its fixed point when
the model's samples look like the data *to the model*: E(x-) ~ E(x+) on average.  While
E(x-) stays far below E(x+) the sampler still finds regions the model thinks likely and
the data do not visit, and the training is still pushing them up.  So we watch:

* the ratio mean E(x-) / mean E(x+) over the last tenth of the NAE steps (near 1 at
  equilibrium; the criterion used for the published models is >= 0.9);
* the validation AUROC over the last validations (flat when the outlier scores settled).

:func:`read_metrics` loads the log, :func:`equilibrium` computes the two numbers, and
:func:`training_curves_figure` plots E(x+), E(x-) and the validation AUROCs against the
iteration.  Works for any run directory (``nae train --out``) or published model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np


def _jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines log, blank lines skipped."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def read_metrics(run_dir, history: bool = False) -> list[dict]:
    """Every event of ``RUN_DIR/metrics.jsonl``; a step logged twice (after a resume) keeps its last record.

    ``history=True``: for a published model that continued earlier runs, their logs
    (``history.jsonl``, see :data:`nae.pretrained.HISTORY`) come first, and the NAE iterations of
    each later run are counted on from where the run before it ended, so the curves show the
    model's whole training.  Every record then has ``"segment"`` (0 = the first run) and
    ``"segment_step"`` (its step in its own run); :func:`segment_starts` gives the iterations
    where each continuation began.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        from .errors import CheckpointError

        raise CheckpointError(f"{path} does not exist: give a run directory written by `nae train`")
    logs = []
    hist = Path(run_dir) / "history.jsonl"
    if history and hist.is_file():
        by_segment: dict = {}
        for r in _jsonl(hist):
            by_segment.setdefault(r.get("segment", 0), []).append(r)
        logs = [by_segment[k] for k in sorted(by_segment)]
    logs.append(_jsonl(path))
    out, offset = [], 0
    for k, records in enumerate(logs):
        part = _last_record_per_step(records)
        if history:
            for r in part:
                r["segment"], r["segment_step"] = k, r.get("step")
                if r.get("phase") == "nae" and r.get("step") is not None:
                    r["step"] = r["step"] + offset
            offset = max((r["step"] for r in part if r.get("phase") == "nae" and r.get("step") is not None),
                         default=offset)
        out += part
    return out


def run_hardware(run_dir, threads: Optional[int] = None) -> str:
    """Where a run trained, in the manifest's words, read from the ``start`` events of its log:
    ``"Intel Xeon with AMX, 1 thread, bf16"``.  The thread count comes from the log (runs since
    2026-12-07 record it) or from ``threads`` when the caller knows it; it is left out otherwise.
    A run resumed on several machines names each."""
    starts = [e for e in read_metrics(run_dir) if e.get("event") == "start"]
    if not starts:
        from .errors import CheckpointError

        raise CheckpointError(f"{Path(run_dir) / 'metrics.jsonl'} has no start event: is it a run of `nae train`?")

    def where(e: dict) -> str:
        # "precision bf16 on Intel Xeon (x86_64): ..., amx_bf16; torch kernels: ..." -> "Intel Xeon with AMX"
        text = e.get("hardware", "") or e.get("device", "unknown")
        name = text.split(" on ", 1)[-1].split(" (", 1)[0].split(":", 1)[0] if " on " in text else text
        return name + (" with AMX" if "amx_bf16" in text else "")

    parts = ["; ".join(dict.fromkeys(where(e) for e in starts))]
    counts = sorted({e["threads"] for e in starts if "threads" in e} or ({threads} if threads else set()))
    if counts:
        parts.append("/".join(map(str, counts)) + (" thread" if counts == [1] else " threads"))
    parts.append("/".join(dict.fromkeys(e.get("precision", "fp32") for e in starts)))
    return ", ".join(parts)


def _last_record_per_step(records) -> list[dict]:
    seen, out = {}, []
    for r in records:
        if r.get("event") in ("step", "validation"):
            key = (r["event"], r.get("phase"), r.get("step"))
            if key in seen:
                out[seen[key]] = r
                continue
            seen[key] = len(out)
        out.append(r)
    return out


def segment_starts(records) -> list[int]:
    """The NAE iterations at which each continuation began, in records read with
    ``read_metrics(..., history=True)`` (empty for a model trained in one run, or whose NAE phase
    started from a published AE milestone)."""
    starts = {}
    for r in records:
        k = r.get("segment")
        if k and r.get("phase") == "nae" and r.get("step") is not None:
            starts[k] = r["step"] - r["segment_step"]  # the offset of the segment's iterations
    # a segment at 0 began the NAE phase (after a published AE milestone's log): no continuation
    return [starts[k] for k in sorted(starts) if starts[k] > 0]


def series(records, key: str, event: str = "step", phase: str = "nae") -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of one logged quantity."""
    pts = [(r["step"], r[key]) for r in records
           if r.get("event") == event and r.get("phase") == phase and r.get(key) is not None]
    if not pts:
        return np.array([]), np.array([])
    xs, ys = zip(*pts)
    return np.asarray(xs), np.asarray(ys, dtype=float)


def auroc_keys(records, phase: str = "nae") -> list[str]:
    """The ``auroc_<set>`` keys the validations of ``phase`` logged, in order of appearance."""
    keys = []
    for r in records:
        if r.get("event") == "validation" and r.get("phase") == phase:
            keys += [k for k in r if k.startswith("auroc_") and k not in keys]
    return keys


def equilibrium(run_dir, last: float = 0.1, target: float = 0.9, flat_tol: float = 0.02) -> dict:
    """The equilibrium diagnostics of an NAE run.

    Returns ``{"iterations" (the last NAE iteration logged by any event), "ratio" (mean E(x-) /
    mean E(x+) over the last ``last`` of the logged steps), "target", "near_equilibrium" (ratio >= target),
    "auroc_last" {set: last value}, "auroc_change" {set: last minus the mean of the validations
    in the last ``last`` of the run before it, or None}, "auroc_flat" (every change within
    ``flat_tol``)}``.
    """
    rec = read_metrics(run_dir)
    it, e_pos = series(rec, "e_pos")
    _, e_neg = series(rec, "e_neg")
    steps = [r["step"] for r in rec if r.get("phase") == "nae" and isinstance(r.get("step"), int)]
    out = {"iterations": max(steps, default=0), "ratio": None, "target": target, "near_equilibrium": False,
           "auroc_last": {}, "auroc_change": {}, "auroc_flat": None}
    if len(it):
        k = max(1, int(round(len(it) * last)))
        out["ratio"] = float(e_neg[-k:].mean() / e_pos[-k:].mean())
        out["near_equilibrium"] = out["ratio"] >= target
    flats = []
    for key in auroc_keys(rec):
        xs, ys = series(rec, key, event="validation")
        if not len(xs):
            continue
        name = key[len("auroc_"):]
        out["auroc_last"][name] = float(ys[-1])
        window = ys[:-1][xs[:-1] >= xs[-1] * (1 - max(last, 0.2))]
        change = float(ys[-1] - window.mean()) if len(window) else None
        out["auroc_change"][name] = change
        if change is not None:
            flats.append(abs(change) <= flat_tol)
    out["auroc_flat"] = all(flats) if flats else None
    return out


def ratio_text(eq: dict, missing: str = "n/a") -> str:
    """:func:`equilibrium`'s energy ratio with two decimals, or three where two would round a ratio
    below the target up to it (0.897 is "0.897", not "0.90", when the criterion is 0.9)."""
    r = eq["ratio"]
    if r is None:
        return missing
    text = f"{r:.2f}"
    if not eq.get("near_equilibrium", False) and float(text) >= eq.get("target", 0.9):
        text = f"{r:.3f}"
    return text


def flat_text(eq: dict, missing: str = "n/a") -> str:
    """Whether :func:`equilibrium` found the validation AUROC flat: "yes", "no" or ``missing``
    (too few validations to tell)."""
    return {True: "yes", False: "no", None: missing}[eq["auroc_flat"]]


def equilibrium_line(eq: dict) -> str:
    """:func:`equilibrium`'s result in one line, for a table of runs: the NAE iterations, the
    energy ratio over the last tenth and the last validation AUROC of each watched set."""
    aurocs = ", ".join(f"{k} {v:.3f}" for k, v in eq["auroc_last"].items())
    return (f"{eq['iterations']} NAE iterations; E(x-)/E(x+) over the last tenth {ratio_text(eq)}; "
            f"last validation AUROC: {aurocs}")


def equilibrium_markdown(runs: dict) -> str:
    """A Markdown table of :func:`equilibrium` for several runs (``{label: run directory}``): the
    NAE iterations, the energy ratio over the last tenth and the last validation AUROC of each
    watched set, one row per run."""
    eqs = {label: equilibrium(run) for label, run in runs.items()}
    sets = list(dict.fromkeys(k for eq in eqs.values() for k in eq["auroc_last"]))
    rows = ["| run | NAE iterations | E(x-)/E(x+), last tenth | " + " | ".join(
                f"last validation AUROC, {k}" for k in sets) + " |",
            "|---|---:|---:|" + "---:|" * len(sets)]
    for label, eq in eqs.items():
        cells = [f"{eq['auroc_last'][k]:.3f}" if k in eq["auroc_last"] else "" for k in sets]
        rows.append(f"| {label} | {eq['iterations']:,} | {ratio_text(eq)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def equilibrium_summary(eq: dict) -> str:
    """:func:`equilibrium`'s result in three short lines: the iterations; the energy ratio over
    the last tenth and whether it reaches the target :func:`equilibrium` judged it by (near
    equilibrium); whether the validation AUROC is flat."""
    target = eq.get("target", 0.9)
    if eq["ratio"] is None:
        verdict = "n/a (too few logged steps)"
    elif eq["near_equilibrium"]:
        verdict = f"{ratio_text(eq)}, near equilibrium (>= {target})"
    else:
        verdict = f"{ratio_text(eq)}, below the {target} of near equilibrium"
    return (f"{eq['iterations']} NAE iterations\nE(x-)/E(x+), last tenth: {verdict}\n"
            f"validation AUROC flat: {flat_text(eq, 'too few validations to tell')}")


def ae_phase_summary(info: dict, epochs: Optional[int] = None) -> str:
    """:func:`ae_phase`'s result in short lines: how long the AE phase ran and what ended it
    (early stopping, or the cap of ``epochs``); the best validation energy (the weights kept);
    how much the last validation moved."""
    if not info["ended"]:
        how = "not ended yet"
    elif info["early_stopped"]:
        how = "ended by early stopping"
    else:
        how = "ended by the epoch cap" + (f" ({epochs} epochs)" if epochs is not None else "")
    lines = [f"AE phase: {info['steps']} iterations, {how}"]
    if info["best_val"] is not None:
        lines.append(f"best validation energy {info['best_val']:.5f} at iteration {info['best_step']} (kept)")
    gain = info["last_gain"]
    if gain is not None:
        lines.append(f"the last validation {'fell' if gain >= 0 else 'rose'} {100 * abs(gain):.1f} % "
                     f"{'below' if gain >= 0 else 'above'} the one before")
    return "\n".join(lines)


def ae_phase_short(run_dir, patience: Optional[int] = None) -> str:
    """How a model's AE phase ended, in a few words for a table ("AE 36 epochs, early stopping";
    "AE 30 epochs, epoch cap"), from its whole log (``history.jsonl`` first, for a model that
    continued earlier runs); "AE log not kept" when no AE phase was logged."""
    info = _ae_phase(read_metrics(run_dir, history=True), patience)
    if not info["val"]:
        return "AE log not kept"
    if not info["ended"]:
        return f"AE {info['epochs']} epochs so far"
    how = "early stopping" if info["early_stopped"] else "epoch cap" if patience is not None else "ended"
    return f"AE {info['epochs']} epochs, {how}"


def _plot_noisy(ax, xs, ys, color: str, label: str) -> None:
    """A noisy logged series, faint, with a running mean over it that shows the trend."""
    if not len(xs):
        return
    ax.plot(xs, ys, lw=0.8, color=color, alpha=0.35)
    w = max(1, len(ys) // 25)
    ax.plot(xs[w - 1:], np.convolve(ys, np.ones(w) / w, mode="valid"), lw=1.6, color=color, label=label)


def training_curves_figure(run_dir, title: Optional[str] = None, figsize=(9.0, 3.0), history: bool = True):
    """Two panels: E(x+) and E(x-) against the NAE iteration (log scale), and the validation
    AUROC of each watched outlier set.  ``history``: for a published model that continued earlier
    runs, show them too (a dotted line where each continuation began).  Returns the figure."""
    import matplotlib.pyplot as plt

    rec = read_metrics(run_dir, history=history)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=figsize)
    for key, label, color in (("e_pos", "E(x+), data", "tab:blue"), ("e_neg", "E(x-), samples", "tab:red")):
        _plot_noisy(a1, *series(rec, key), color=color, label=label)
    a1.set_yscale("log")
    a1.set_xlabel("NAE iteration")
    a1.set_ylabel("energy")
    if a1.get_legend_handles_labels()[0]:
        a1.legend(fontsize=8, frameon=False)
    else:
        a1.text(0.5, 0.5, "no logged NAE steps", ha="center", va="center", transform=a1.transAxes)
    for key in auroc_keys(rec):
        xs, ys = series(rec, key, event="validation")
        a2.plot(xs, ys, "o-", ms=3, lw=1.2, label=key[len("auroc_"):])
    a2.axhline(0.5, color="k", lw=0.8, ls=":")
    for x in segment_starts(rec):
        for ax in (a1, a2):
            ax.axvline(x, color="0.5", lw=0.8, ls=":")
    a2.set_ylim(0, 1.02)
    a2.set_xlabel("NAE iteration")
    a2.set_ylabel("validation AUROC")
    if auroc_keys(rec):
        a2.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ae_phase(run_dir, patience: Optional[int] = None) -> dict:
    """How the AE phase of a run went, from its ``metrics.jsonl``.

    Returns ``{"steps" (the last logged AE step), "epochs" (epochs begun), "val" [(step, val_energy)], "best_step",
    "best_val", "ended" (True once the phase has ended), "early_stopped" (the phase ended on
    ``patience`` validations without improvement: None when ``patience`` is not given),
    "last_gain" (the relative fall of the validation energy between the last two validations)}``.
    """
    return _ae_phase(read_metrics(run_dir), patience)


def ae_phase_of_log(path, patience: Optional[int] = None) -> dict:
    """:func:`ae_phase` from a log file of any name (a kept AE's ``metrics_ae.jsonl``, for one)."""
    path = Path(path)
    if not path.is_file():
        from .errors import CheckpointError

        raise CheckpointError(f"{path} does not exist: give a log written by `nae train` (metrics.jsonl)")
    return _ae_phase(_last_record_per_step(_jsonl(path)), patience)


def _ae_phase(rec, patience: Optional[int] = None) -> dict:
    steps = [r for r in rec if r.get("phase") == "ae" and r.get("step") is not None]
    val = [(r["step"], float(r["val_energy"])) for r in rec
           if r.get("event") == "validation" and r.get("phase") == "ae" and r.get("val_energy") is not None]
    val = sorted(dict(val).items())  # a validation repeated after a resume counts once
    out = {"steps": max((r["step"] for r in steps), default=0),
           # epochs begun: the training steps' 0-based epoch index, plus one
           "epochs": max((r.get("epoch", 0) + 1 for r in steps if r.get("event") == "step"), default=0),
           "val": val, "best_step": None, "best_val": None,
           "ended": any(r.get("event") == "phase_end" and r.get("phase") == "ae" for r in rec),
           "early_stopped": None, "last_gain": None}
    if val:
        out["best_step"], out["best_val"] = min(val, key=lambda p: p[1])
        if len(val) > 1:
            out["last_gain"] = (val[-2][1] - val[-1][1]) / val[-2][1]
        if patience is not None:
            after_best = sum(1 for s, _ in val if s > out["best_step"])
            out["early_stopped"] = out["ended"] and after_best >= patience
    return out


def ae_curves_figure(run_dir, title: Optional[str] = None, figsize=(5.0, 3.0)):
    """The AE phase: the training reconstruction error (every logged step, with a running mean)
    and the validation energy, the quantity early stopping watches, with its best point marked.
    Returns the figure."""
    import matplotlib.pyplot as plt

    rec = read_metrics(run_dir)
    info = _ae_phase(rec)
    fig, ax = plt.subplots(figsize=figsize)
    xs, ys = series(rec, "recon", phase="ae")
    if not len(xs):
        xs, ys = series(rec, "loss", phase="ae")
    _plot_noisy(ax, xs, ys, color="tab:blue", label="training batches")
    if info["val"]:
        vx, vy = zip(*info["val"])
        ax.plot(vx, vy, "o-", ms=4, lw=1.2, color="tab:orange", label="validation")
        ax.plot([info["best_step"]], [info["best_val"]], "*", ms=11, color="tab:red", label="best (kept)")
    if not len(xs) and not info["val"]:
        ax.text(0.5, 0.5, "no logged AE steps", ha="center", va="center", transform=ax.transAxes)
    ax.set_yscale("log")
    ax.set_xlabel("AE iteration")
    ax.set_ylabel("reconstruction error (energy)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
