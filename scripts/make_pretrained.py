"""Reproduces the published pretrained models: train each recipe's full budget,
evaluate it, and publish it into pretrained/ with its manifest entry.

    python scripts/make_pretrained.py                 # every recipe
    python scripts/make_pretrained.py toy2d_nae_omi   # some of them
    python scripts/make_pretrained.py --list
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nae.evaluate import evaluate_model  # noqa: E402
from nae.notebook import RUNS, hardware, recipe_config, train_recipe  # noqa: E402
from nae.pretrained import load_pretrained, publish  # noqa: E402
from nae.recipes import RECIPES, get_recipe  # noqa: E402


def _load() -> str:
    """The machine's load when the model was published: wall times on shared cores depend on it."""
    import os

    if not hasattr(os, "getloadavg"):
        return ""
    return f"; load average {os.getloadavg()[1]:.1f} over the last 5 min (other jobs shared the cores)"


def make(name: str, resume: bool = False) -> dict:
    r = get_recipe(name)
    cfg = recipe_config(name, "full")
    run_dir = RUNS / "full" / name
    t0 = time.time()
    run_dir, wall = train_recipe(name, "full", run_dir, fresh=not resume)
    info = {"config": f"configs/{r.config}.yml" if not r.config.endswith(".yml") else r.config,
            "budget": "full", "overrides": list(r.overrides) + list(r.full), "hardware": hardware() + _load(),
            "wall_time_s": round(wall, 1), "description": r.description,
            "date": time.strftime("%Y-%m-%d")}
    publish(run_dir, name, {**info, "metrics": None})
    model = load_pretrained(name)  # evaluate what was stored (half precision)
    metrics = {}
    if len(cfg.model.x_shape) == 3:
        res = evaluate_model(model, cfg, r.ood or __import__("nae.evaluate").evaluate.default_ood(cfg), n=r.eval_n)
        metrics = {"auroc": res["auroc"], "absent": sorted(res["absent"]), "n_in": res["n_in"]}
        try:
            ae = load_pretrained(name, which="ae")
            res_ae = evaluate_model(ae, cfg, r.ood or list(res["auroc"]), n=r.eval_n)
            metrics["ae_auroc"] = res_ae["auroc"]
        except Exception as e:  # runs without an AE phase
            metrics["ae_auroc_error"] = str(e)
    publish(run_dir, name, {**info, "metrics": metrics})
    print(f"published {name} ({time.time() - t0:.0f} s): {metrics}")
    return metrics


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*")
    p.add_argument("--list", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs in runs/full/NAME")
    a = p.parse_args()
    if a.list:
        for k, r in sorted(RECIPES.items()):
            print(f"{k:28s} {r.config:16s} {r.description}")
        return
    for name in a.names or sorted(RECIPES):
        make(name, resume=a.resume)


if __name__ == "__main__":
    main()
