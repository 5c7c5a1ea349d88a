"""Helpers that keep the notebooks thin: the budget switch and getting trained models.

Every notebook starts with::

    BUDGET = nae.tutorial.notebook.budget()   # "smoke" (CI, seconds) or "full" (the real experiment)
    RETRAIN = False                  # True: retrain instead of loading the pretrained models

:func:`obtain` then returns a trained model for a recipe name (see :mod:`nae.tutorial.recipes`):

* smoke budget: trains the recipe with the config's smoke budget (seconds on 2 CPU
  cores) into ``runs/smoke/NAME``, so CI exercises the real training code;
* full budget: loads the published pretrained model (sha256-checked), or trains the
  recipe's full budget when ``retrain`` is set or no pretrained model exists.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..config import choose_budget, load_config
from .recipes import get_recipe

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "runs"


def budget() -> str:
    """The notebook budget: ``$NAE_BUDGET`` (smoke or full), default full."""
    return choose_budget(None)


def hardware() -> str:
    """One line naming the CPU (or GPU), its cores and the torch threads, for the notebooks to print next to timings."""
    import platform

    import torch

    if torch.cuda.is_available():
        return f"1x {torch.cuda.get_device_name(0)}"
    name = platform.processor() or platform.machine()
    try:  # the CPU model, e.g. "AMD EPYC"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = f"{line.split(':', 1)[1].strip()} {platform.machine()}"
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{name} CPU, {os.cpu_count()} cores, {threads} torch thread{'s' if threads != 1 else ''}"


def recipe_config(name: str, budget_name: str):
    """The RunConfig of recipe ``name`` in a budget: its overrides, plus its ``full`` schedule in the full budget."""
    r = get_recipe(name)
    over = list(r.overrides) + (list(r.full) if budget_name == "full" else [])
    return load_config(r.config, budget=budget_name, overrides=over)


def train_recipe(name: str, budget_name: str, run_dir=None, progress: bool = True, fresh: bool = True):
    """Trains a recipe; returns (run_dir, wall seconds)."""
    from ..trainer import train

    cfg = recipe_config(name, budget_name)
    run_dir = Path(run_dir or (RUNS / budget_name / name))
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.time()
    resume = (run_dir / "checkpoint.pt").exists()
    extend = []
    if resume and (run_dir / "config.yml").is_file():  # the recipe's schedule may have grown since
        from ..config import load_saved_config, schedule_changes

        extend = schedule_changes(load_saved_config(run_dir / "config.yml"), cfg)
    t = train(cfg, run_dir, resume=resume, progress=progress, extend=extend)
    # a resumed run: its whole training time (every session), not just this call's
    return run_dir, max(t.state.get("wall_s", 0.0), time.time() - t0) if resume else time.time() - t0


#: smoke runs trained by this process: run dir -> wall seconds
_SMOKE_TRAINED: dict = {}


def obtain(name: str, budget_name: str | None = None, retrain: bool = False, which: str = "final",
           progress: bool = True):
    """A trained model for recipe ``name`` (see the module docstring).

    The model carries ``model.provenance``: a dict saying where it comes from (pretrained
    or trained now), the budget, hardware and wall time, for the notebook to print.
    """
    from ..pretrained import list_pretrained, load_pretrained
    from ..run import load_run

    b = budget_name or budget()
    if b == "full" and not retrain and name in list_pretrained():
        model = load_pretrained(name, which=which)
        m = model.manifest
        model.provenance = {"source": f"pretrained/{name}", "budget": m.get("budget"),
                            "hardware": m.get("hardware"), "wall_time_s": m.get("wall_time_s"),
                            "nae_iterations": m.get("nae_iterations")}  # in all, for a continued model
        if which == "ae" and f"train.init_ae={name}" in (m.get("overrides") or []):
            # a continuation of the published model took its AE as it was: the manifest's wall time
            # is not the AE's; its hardware text says the AE phase's where it has one
            phase = ae_phase_text(m.get("hardware") or "")
            model.provenance.update(
                hardware=(f"the AE of the model this one continued (train.init_ae), not trained again; "
                          f"its AE phase: {phase}" if phase else
                          "the AE of the model this one continued (train.init_ae), not trained again: "
                          "the manifest's note says how it was trained"),
                wall_time_s=None, time_in_hardware=True)
        return model
    run_dir = RUNS / b / name
    done = (run_dir / "model.pt").exists()
    # smoke: train afresh once per process (a second obtain, e.g. which="ae", reuses that run)
    if not done or retrain or (b == "smoke" and run_dir not in _SMOKE_TRAINED):
        run_dir, wall = train_recipe(name, b, run_dir, progress=progress, fresh=b == "smoke" or retrain)
        if b == "smoke":
            _SMOKE_TRAINED[run_dir] = wall
    else:
        wall = _SMOKE_TRAINED.get(run_dir) if b == "smoke" else None
    model = load_run(run_dir, which=which)
    model.provenance = {"source": str(run_dir.relative_to(REPO)) if run_dir.is_relative_to(REPO) else str(run_dir),
                        "budget": b, "hardware": hardware(), "wall_time_s": wall}
    return model


def ae_phase_text(hardware: str) -> str:
    """The AE phase's part of a manifest's hardware text that states each phase
    (``"AE phase: ...; NAE phase: ..."``), or ``""``."""
    import re

    m = re.search(r"(?:^|; )AE phase: (.*?)(?:; NAE phase:|$)", hardware)
    return m.group(1).strip() if m else ""


def wrap(text: str, width: int = 76) -> str:
    """``text`` wrapped at ``width`` characters, the width of the book's code boxes: continuation
    lines indented by four spaces, words and hyphenated names never broken (``width=0``: as is)."""
    import textwrap

    if not width:
        return text
    return textwrap.fill(text, width=width, subsequent_indent="    ", break_on_hyphens=False, break_long_words=False)


def describe(model, width: int = 76) -> str:
    """Where the model comes from, its budget, hardware and wall time, wrapped by :func:`wrap` at
    ``width`` characters (``width=0``: one line)."""
    p = getattr(model, "provenance", {}) or {}
    hw = p.get("hardware", "?")
    wall = p.get("wall_time_s")
    wall_s = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "n/a"
    # a model trained over several jobs states each phase's time in its hardware text; the
    # manifest's wall time is then only its last job's (e.g. the NAE stage), not the model's
    tail = "" if p.get("time_in_hardware") or "AE phase:" in str(hw) and "NAE phase:" in str(hw) \
        else f", wall time {wall_s}"
    return wrap(f"{p.get('source', '?')}: budget {p.get('budget', '?')}, {hw}{tail}", width)


def training_log(model, phase: str = "nae") -> dict:
    """The logged training steps of a model from :func:`obtain` (its ``metrics.jsonl``):
    ``{"step": [...], "e_pos": [...], "e_neg": [...], "T": [...], "loss": [...]}`` for ``phase``."""
    import numpy as np

    from ..diagnostics import read_metrics

    src = Path((getattr(model, "provenance", {}) or {}).get("source", ""))
    rows = read_metrics(src if src.is_absolute() else REPO / src)
    rows = [r for r in rows if r.get("event") == "step" and r.get("phase") == phase]
    keys = ("step", "e_pos", "e_neg", "T", "loss")
    return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in keys}
