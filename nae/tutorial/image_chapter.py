"""The part the CIFAR-10 and CelebA-64 chapters (notebooks 03 and 04) share.

Both chapters do the same things with a different data set: list the data, measure what
training costs on the CPU at hand, load the published AE and NAE of the CPU recipe (or
train the smoke budget), tabulate their AUROC next to the original's published numbers,
show the outliers the AE reconstructs best, samples and the training curves.  The
teaching specific to each data set stays in the notebook; :class:`ImageChapter` holds the
bookkeeping::

    ch = ImageChapter("cifar10_ood_cpu", budget="full")
    display(Markdown(ch.compute_markdown()))
    ae, model = ch.models()          # None where that phase is not published yet

A phase that has not been trained is reported as such (a table cell "not trained yet"),
never replaced by a number from elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Optional, Sequence

#: AUROC of the original code's published models (original README; CIFAR-10: ``nae_9.pkl``).
#: The original published no CelebA-64 AUROC.
ORIGINAL_AUROC: dict[str, dict[str, float]] = {
    "cifar10_ood": {"ConstantGray": 0.9632, "FashionMNIST": 0.8193, "SVHN": 0.9196, "CelebA": 0.8873,
                    "Noise": 1.0000},
    "celeba64_ood": {},
}

#: the original schedule on the original data (reference: training schedules table):
#: AE epochs (upper bound, early stopping may end it sooner), NAE epochs, iterations per epoch
ORIGINAL_SCHEDULE: dict[str, dict[str, int]] = {
    "cifar10_ood": {"ae_epochs": 180, "nae_epochs": 10, "it_per_epoch": 352},
    "celeba64_ood": {"ae_epochs": 30, "nae_epochs": 15, "it_per_epoch": 1272},
}

NOT_TRAINED = "not trained yet"


@dataclass
class ImageChapter:
    """One image chapter: a recipe (``*_cpu``) and a budget ("smoke" or "full")."""

    recipe: str
    budget: str = "full"
    retrain: bool = False

    @cached_property
    def cfg(self):
        """The recipe's RunConfig in this budget (read once: every table and figure uses it)."""
        from .notebook import recipe_config

        return recipe_config(self.recipe, self.budget)

    @property
    def config_name(self) -> str:
        """The config the recipe builds on (e.g. ``cifar10_ood``): the key of :data:`ORIGINAL_SCHEDULE`
        and :data:`ORIGINAL_AUROC`."""
        from .recipes import get_recipe

        return get_recipe(self.recipe).config

    @property
    def ood(self) -> list:
        """The recipe's outlier sets (an empty list when the recipe names none)."""
        from .recipes import get_recipe

        return list(get_recipe(self.recipe).ood or [])

    # -- data -------------------------------------------------------------------------
    def data_lines(self) -> list[str]:
        """``"NAME found|absent"`` for the in-distribution set and each outlier set."""
        from .. import data as D

        wanted = [self.cfg.data.indist, *self.ood]
        rows = {r["name"]: r for r in D.list_datasets()}
        return [f"{n:13s} {'found' if rows.get(n, {}).get('found') else 'absent'}" for n in wanted if n in rows]

    # -- cost ------------------------------------------------------------------------
    def n_train(self) -> int:
        """Training images of this chapter's data on this machine."""
        from ..data import training_sets

        return len(training_sets(self.cfg)[0])

    def stored_costs(self) -> list:
        """The step timings that ``benchmarks/chapter_cost.py`` stored for this chapter's config,
        one dict (hardware, date, command, rows) per CPU they were measured on
        (``benchmarks/results/cost_CONFIG.json`` and ``cost_CONFIG_*.json``, e.g. ``_amx``), in
        the order of their file names; empty when there are none."""
        import json
        from pathlib import Path

        res = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
        files = sorted([*res.glob(f"cost_{self.config_name}.json"), *res.glob(f"cost_{self.config_name}_*.json")])
        return [json.loads(f.read_text()) for f in files]

    def compute_rows(self, precisions: Optional[Sequence[str]] = None, reps: int = 2,
                     stored: Optional[bool] = None, saved: Optional[Mapping] = None) -> dict:
        """Step times multiplied out for the original schedule (original data size) and for this
        recipe's schedule (our data).

        ``stored`` (default: in the full budget, when :meth:`stored_costs` has them): the timings
        of ``benchmarks/chapter_cost.py``, measured on an idle machine (``saved``: which of
        :meth:`stored_costs`; default the first); else measured now (``nae.cost.measure``).  The smoke budget measures the smoke config (tiny batches: the
        figures only show that the code runs).  ``precisions`` (default fp32 and bf16): timed
        now, bf16 only where this CPU runs it natively; emulated bf16 (an AVX2-only CPU) is about
        7x slower, ``auto`` never picks it there, and timing it would cost minutes for nothing."""
        from .. import cost
        from ..config import load_config
        from ..speed import cpu_bf16_native

        cfg = self.cfg
        orig_cfg = load_config(self.config_name, budget=self.budget)  # the original's settings
        sched = ORIGINAL_SCHEDULE[self.config_name]
        n_ours = self.n_train()
        n_neg_ours = cfg.sampler.n_negatives or cfg.data.batch_size
        if saved is None and (stored or (stored is None and self.budget == "full")):
            saved = next(iter(self.stored_costs()), None)
        if stored and saved is None:
            raise FileNotFoundError(f"no stored timings for {self.config_name}: run "
                                    f"python benchmarks/chapter_cost.py --config {self.config_name}")
        if precisions is None:
            precisions = ("fp32", "bf16") if saved is not None or cpu_bf16_native() else ("fp32",)

        def timings(c, prec, n_neg, only=None):
            if saved is not None:
                for r in saved["rows"]:
                    if r["precision"] == prec and r["n_neg"] == n_neg and r["batch"] == c.data.batch_size:
                        return dict(r)
            if only is not None:
                return cost.measure(c, prec, reps=reps, n_neg=n_neg, only=only)
            return cost.measure(c, prec, reps=reps)

        rows = {}
        for prec in precisions:
            t_orig = timings(orig_cfg, prec, orig_cfg.data.batch_size)
            t_ours = t_orig
            if n_neg_ours != cfg.data.batch_size:  # fewer negatives
                t_ours = {**t_orig, **timings(cfg, prec, n_neg_ours, only=("z_pass_s", "x_pass_s", "loss_step_s")),
                          "n_neg": n_neg_ours}
            n_orig = sched["it_per_epoch"] * orig_cfg.data.batch_size
            rows[f"original, {prec}"] = {**t_orig, **cost.schedule_hours(
                orig_cfg, t_orig, n_orig, sched["ae_epochs"], sched["nae_epochs"] * sched["it_per_epoch"])}
            nae_iters = cfg.train.nae.max_iters or cfg.train.nae.epochs * math.ceil(n_ours / cfg.data.batch_size)
            rows[f"ours, {prec}"] = {**t_ours, **cost.schedule_hours(cfg, t_ours, n_ours, cfg.train.ae.epochs,
                                                                      nae_iters)}
        if saved is not None:  # each row says where its timings come from (compute_markdown)
            src = {k: saved[k] for k in ("hardware", "date", "command", "isa") if k in saved}
            rows = {k: {**r, "source": src} for k, r in rows.items()}
        return rows

    def compute_markdown(self, rows: Optional[Mapping] = None, **kw) -> str:
        """The chapter's compute table with the conditions it was measured under."""
        from .. import cost
        from .notebook import hardware

        rows = rows if rows is not None else self.compute_rows(**kw)
        first = next(iter(rows.values()))
        saved = first.get("source")
        where = (f"Measured on {saved['hardware']}" + (f" ({saved['isa']})" if saved.get("isa") else "")
                 + f" on {saved['date']} (stored by `{saved['command']}`)"
                 if saved else f"Measured now on {hardware()}")
        return (f"{where}, budget {self.budget}, batch {first['batch']}. The AE phase is an upper bound (early "
                f"stopping may end it sooner); the load average is the machine's when each row was timed (other "
                f"jobs on the same cores make every step slower).\n\n" + cost.compute_markdown(rows))

    def compute_tables(self, reps: int = 2) -> str:
        """:meth:`compute_markdown` for every CPU of :meth:`stored_costs` in the full budget (the
        processor decides whether bf16 pays: shown side by side), else one table timed now."""
        saved = self.stored_costs() if self.budget == "full" else []
        if not saved:
            return self.compute_markdown(reps=reps)
        return "\n\n".join(self.compute_markdown(self.compute_rows(reps=reps, saved=s)) for s in saved)

    # -- models ----------------------------------------------------------------------
    def stage(self) -> Optional[str]:
        """What is published for this recipe: "final", "ae" (the AE phase only) or None."""
        from ..pretrained import read_manifest

        entry = read_manifest().get(self.recipe)
        return None if entry is None else entry.get("stage", "final")

    def models(self) -> tuple:
        """``(ae, nae)``: the recipe's AE (end of its AE phase) and NAE, each None when it
        has not been trained and published yet (full budget); the smoke budget trains both."""
        from .notebook import obtain

        stage = self.stage() if self.budget == "full" and not self.retrain else "final"
        if stage is None:
            return None, None
        ae = obtain(self.recipe, self.budget, retrain=self.retrain, which="ae")
        model = obtain(self.recipe, self.budget, retrain=False, which="final") if stage == "final" else None
        return ae, model

    # -- results ---------------------------------------------------------------------
    #: which metrics of a manifest entry belong to which model of the chapter
    STORED_KEYS = {"AE": ("ae_auroc", "ae_fpr95"), "NAE": ("auroc", "fpr95")}

    def stored_results(self, n: Optional[int] = None) -> dict:
        """``{label: result}`` for the published models whose metrics the manifest holds, measured
        when they were published (``scripts/make_pretrained.py``: :func:`nae.evaluate.evaluate_model`
        on the published fp16 weights, in fp32) on ``n`` test images of each set, the number this
        chapter asks for.  Each result is marked ``"stored": True``; a model whose metrics were
        measured on another number of images (or not at all) is left out, to be scored now."""
        from ..pretrained import measured_on, read_manifest

        if self.budget != "full" or self.retrain:
            return {}
        entry = read_manifest().get(self.recipe) or {}
        m = entry.get("metrics") or {}
        present = [o for o in self.ood if o not in m.get("absent", [])]
        out = {}
        for label, (k_auroc, k_fpr) in self.STORED_KEYS.items():
            if not measured_on(m, k_auroc, present, n) or (label == "NAE" and entry.get("stage", "final") != "final"):
                continue
            out[label] = {"auroc": dict(m[k_auroc]), "fpr95": dict(m.get(k_fpr) or {}), "n_in": m.get("n_in"),
                          "n": dict(m.get("n") or {}), "stored": True, "date": entry.get("date"),
                          "absent": {a: "absent when the model was published" for a in m.get("absent", [])}}
        return out

    def evaluate(self, models: Mapping, n: Optional[int] = None, stored: bool = False) -> dict:
        """``{label: evaluate_model(...)}`` for the models that exist (same test images).

        ``stored=True`` (full budget): take a published model's metrics from the manifest, where
        they were measured on the same ``n`` test images when it was published
        (:meth:`stored_results`), instead of scoring the sets again, which takes minutes on a CPU
        for 64x64 images; a model without them is scored now, in fp32 like the manifests' metrics."""
        from ..evaluate import evaluate_model

        have = self.stored_results(n) if stored else {}
        return {lb: have[lb] if lb in have else evaluate_model(m, self.cfg, self.ood, n=n, precision="fp32")
                for lb, m in models.items() if m is not None}

    def target(self, name: str, results: Mapping[str, dict]) -> str:
        """Whether the NAE meets this chapter's target on outlier set ``name`` (issue 13): at least
        the original's published AUROC where there is one (CIFAR-10), else above the AE
        (CelebA-64, for which the original published none): ``met``, ``missed by 0.037``, ``tie``
        (both at the same AUROC, e.g. 1.000 on noise, where "above" cannot hold) or ``–``."""
        def auroc(lb):
            r = results.get(lb)
            return None if not r or name in r.get("absent", []) else r["auroc"].get(name)

        nae, orig = auroc("NAE"), ORIGINAL_AUROC.get(self.config_name, {})
        ref = orig.get(name) if orig else auroc("AE")
        if nae is None or ref is None:
            return "–"
        if orig:
            return "met" if nae >= ref else f"missed by {ref - nae:.3f}"
        if round(nae, 3) == round(ref, 3):
            return "tie"
        return "met" if nae > ref else f"missed by {ref - nae:.3f}"

    def auroc_markdown(self, results: Mapping[str, dict], labels: Sequence[str] = ("AE", "NAE")) -> str:
        """AUROC per outlier set: each model's column (``not trained yet`` where a model is
        missing, ``absent`` where the set is not on this machine), the original's number and
        whether the NAE meets the chapter's target there (:meth:`target`)."""
        orig = ORIGINAL_AUROC.get(self.config_name, {})
        goal = "NAE ≥ original" if orig else "NAE > AE"
        head = "| outlier set | " + " | ".join(f"AUROC {lb}" for lb in labels) + f" | original NAE | target: {goal} |"
        lines = [head, "|---|" + "---:|" * (len(labels) + 1) + "---|"]
        for name in self.ood:
            cells = []
            for lb in labels:
                r = results.get(lb)
                if r is None:
                    cells.append(NOT_TRAINED)
                elif name in r.get("absent", []):
                    cells.append("absent")
                else:
                    v = r["auroc"].get(name)
                    cells.append("–" if v is None else f"{v:.3f}")
            o = orig.get(name)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {'–' if o is None else f'{o:.4f}'} | "
                         f"{self.target(name, results)} |")
        n_in = next((r["n_in"] for r in results.values() if r), None)
        n_out = sorted({v for r in results.values() if r for v in (r.get("n") or {}).values()})
        note = (f"In-distribution: {self.cfg.data.indist} test set" + (f", n = {n_in}" if n_in else "")
                + (f"; outlier sets: n = {n_out[0]} each" if len(n_out) == 1 else "") + ".")
        stored = [lb for lb, r in results.items() if r and r.get("stored")]
        if stored:
            date = next((results[lb].get("date") for lb in stored if results[lb].get("date")), None)
            note += (f" {' and '.join(stored)}: measured when published{f' ({date})' if date else ''}, on the "
                     f"published weights and the same test images (`pretrained/manifest.json`, "
                     f"`scripts/make_pretrained.py`).")
        return note + "\n\n" + "\n".join(lines)

    def present_ood(self) -> list:
        """The outlier sets found on this machine."""
        from .. import data as D

        rows = {r["name"]: r for r in D.list_datasets()}
        return [n for n in self.ood if rows.get(n, {}).get("found")]

    def training_run(self):
        """The run whose logs the training curves show: the published one (full budget), else
        the one this notebook trained (smoke budget, or ``retrain``)."""
        from .notebook import RUNS

        return self.run_dir() if self.budget == "full" and not self.retrain else RUNS / self.budget / self.recipe

    def show_training(self, ae, model) -> None:
        """The training curves of what is published: the NAE phase (E(x+), E(x-), validation
        AUROC) with its equilibrium line; while only the AE is, the AE phase (training and
        validation reconstruction error, the quantity early stopping watches)."""
        import matplotlib.pyplot as plt

        from ..diagnostics import (ae_curves_figure, ae_phase, ae_phase_summary, equilibrium, equilibrium_summary,
                                   training_curves_figure)

        run = self.training_run()
        if model is not None:
            training_curves_figure(run, title=f"{self.recipe}: NAE phase")
            plt.show()
            print(equilibrium_summary(equilibrium(run)))
        elif ae is not None and run is not None:
            ae_curves_figure(run, title=f"{self.recipe}: AE phase")
            plt.show()
            print(ae_phase_summary(ae_phase(run, patience=self.cfg.train.ae.patience), self.cfg.train.ae.epochs))
            print("no NAE phase yet: no NAE curves")
        else:
            print("no model published yet: no curves")

    def run_dir(self):
        """The published run directory of this recipe (its ``metrics.jsonl``), or None."""
        from ..pretrained import PRETRAINED_DIR

        d = PRETRAINED_DIR / self.recipe
        return d if (d / "metrics.jsonl").is_file() else None
