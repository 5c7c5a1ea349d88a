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
from nae.tutorial.notebook import RUNS, hardware, train_recipe  # noqa: E402
from nae.pretrained import load_pretrained, measured_on, publish, read_manifest, update_entry  # noqa: E402
from nae.tutorial.recipes import RECIPES, get_recipe  # noqa: E402


def _load() -> str:
    """The machine's load when the model was published: wall times on shared cores depend on it."""
    import os

    if not hasattr(os, "getloadavg"):
        return ""
    return f"; load average {os.getloadavg()[1]:.1f} over the last 5 min (other jobs shared the cores)"


def make(name: str, resume: bool = False) -> dict:
    r = get_recipe(name)
    t0 = time.time()
    run_dir, wall = train_recipe(name, "full", RUNS / "full" / name, fresh=not resume)
    info = {"config": f"configs/{r.config}.yml" if not r.config.endswith(".yml") else r.config,
            "budget": "full", "overrides": list(r.overrides) + list(r.full), "hardware": hardware() + _load(),
            "wall_time_s": round(wall, 1), "description": r.description}
    metrics = publish_run(run_dir, name, info, ood=r.ood, eval_n=r.eval_n)
    print(f"published {name} ({time.time() - t0:.0f} s): {metrics}")
    return metrics


def not_the_recipes_run(cfg, r) -> str:
    """Why a run's config is not the one recipe ``r`` trains in its full budget ('' when it is):
    then the recipe's description does not describe the run.  The checkpoint interval is left out
    (it changes nothing the model computes)."""
    if r is None:
        return "no recipe has that name"
    from nae.config import config_diff, load_config

    cfg_path = f"configs/{r.config}.yml" if not r.config.endswith(".yml") else r.config
    if f"configs/{cfg.name}.yml" != cfg_path and cfg.name != r.config:
        return f"config {cfg.name}, the recipe's is {r.config}"
    keys = [k for k in config_diff(load_config(r.config, "full", list(r.overrides) + list(r.full)), cfg)
            if k != "train.ckpt_every"]
    return f"it differs from the recipe in {', '.join(keys)}" if keys else ""


def same_ae_metrics(before: dict, entry: dict, names, eval_n) -> dict:
    """The AE's metrics of the entry ``before`` a publish, when the newly published ``entry`` has
    the very same AE (``ae.pt``, same SHA-256: a continuation of the NAE phase) and they were
    measured on the same sets and number of test images, with today's FPR@95
    (``fpr95_definition``); else ``{}`` (measure them again)."""
    from nae.metrics import FPR95_DEFINITION

    old = before.get("metrics") or {}
    ae = before.get("files", {}).get("ae.pt")
    if not ae or ae != entry.get("files", {}).get("ae.pt") or not measured_on(old, "ae_auroc", names, eval_n) \
            or old.get("fpr95_definition") != FPR95_DEFINITION:
        return {}
    return {k: old[k] for k in ("ae_auroc", "ae_fpr95", "n_in", "absent", "n", "eval_n") if k in old} | \
        {"eval_n": eval_n}


def continued_entry(before: dict, info: dict) -> dict:
    """The note, hardware and wall time of a model that continued the published entry ``before``:
    the earlier entry's first (what its weights went through), then the continuation's."""
    def join(key, sep):
        parts = [x for x in (before.get(key), info.get(key)) if x]
        return sep.join(parts)

    out = {"note": join("note", " || "), "hardware": join("hardware", "; ")}
    if before.get("wall_time_s") is not None and info.get("wall_time_s") is not None:
        out["wall_time_s"] = round(before["wall_time_s"] + info["wall_time_s"], 1)
    return out


def publish_run(run_dir, name: str, info: dict, ood=None, eval_n=None, stage: str = "final", root=None,
                weights: str = "final") -> dict:
    """Publishes a run directory as ``pretrained/NAME`` and evaluates what was stored (fp16).

    ``stage="ae"``: a milestone, the run's AE phase (``ae.pt``) only; its metrics are the AE's.
    The manifest gets the precision the run trained in (from its config.yml) and the date.
    """
    from nae.config import load_saved_config
    from nae.data import default_ood

    run_dir = Path(run_dir)
    cfg = load_saved_config(run_dir / "config.yml")
    info = {**info, "precision": cfg.train.precision, "date": time.strftime("%Y-%m-%d")}
    before = read_manifest(root).get(name, {})
    entry = publish(run_dir, name, {**info, "metrics": None}, stage=stage, root=root, weights=weights)
    metrics = {}
    if len(cfg.model.x_shape) == 3:
        names = ood or default_ood(cfg)
        if stage == "final":
            res = evaluate_model(load_pretrained(name, root=root), cfg, names, n=eval_n, precision="fp32")
            metrics = {"auroc": res["auroc"], "fpr95": res["fpr95"], "absent": sorted(res["absent"]),
                       "n_in": res["n_in"], "n": res["n"], "eval_n": eval_n}
        kept = same_ae_metrics(before, entry, names, eval_n)
        if kept:
            metrics.update(kept)
        else:
            try:
                res_ae = evaluate_model(load_pretrained(name, which="ae", root=root), cfg, names, n=eval_n,
                                        precision="fp32")
                metrics.update({"ae_auroc": res_ae["auroc"], "ae_fpr95": res_ae["fpr95"], "n_in": res_ae["n_in"],
                                "absent": sorted(res_ae["absent"]), "n": res_ae["n"], "eval_n": eval_n})
            except Exception as e:  # noqa: BLE001 - runs without an AE phase
                metrics["ae_auroc_error"] = str(e)
    if metrics:
        from nae.metrics import FPR95_DEFINITION

        metrics["fpr95_definition"] = FPR95_DEFINITION  # fpr95 was once measured the other way round
    update_entry(name, {"metrics": metrics}, root=root)  # the files published above, now measured
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*")
    p.add_argument("--list", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs in runs/full/NAME")
    p.add_argument("--publish", metavar="RUN_DIR",
                   help="publish an existing run directory as NAMES[0] instead of training a recipe")
    p.add_argument("--stage", choices=["final", "ae"], default="final",
                   help="with --publish: 'ae' publishes a finished AE phase (a milestone)")
    p.add_argument("--description", default="", help="with --publish: the manifest's description")
    p.add_argument("--note", default="", help="with --publish: budget and levers, for the manifest")
    p.add_argument("--nae-iterations", type=int, default=None,
                   help="with --publish: the NAE iterations the weights have in all, when the run continued "
                        "a published model (its own log counts only the continuation)")
    p.add_argument("--hardware", default="",
                   help="with --publish: where the run trained, when not on this machine (e.g. 'NVIDIA H200')")
    p.add_argument("--continues", action="store_true",
                   help="with --publish: the run continued the model published as NAMES[0] (train.init_nae): the "
                        "manifest keeps that entry's note and hardware before the run's (joined with ' || ' and "
                        "'; ') and its wall time is the two summed")
    p.add_argument("--weights", choices=["final", "ema"], default="final",
                   help="with --publish: 'ema' publishes the run's moving average of its NAE weights (ema.pt) "
                        "as the model")
    a = p.parse_args(argv)
    if a.publish:
        if len(a.names) != 1:
            p.error("--publish RUN_DIR takes exactly one NAME")
        from nae.config import load_saved_config, overrides_from

        cfg = load_saved_config(Path(a.publish) / "config.yml")
        r = RECIPES.get(a.names[0])
        if not a.description:  # the recipe's description describes the recipe's own run, not any run
            differs = not_the_recipes_run(cfg, r)
            if differs:
                p.error(f"--description is needed: {a.publish} is not the run of recipe {a.names[0]!r} "
                        f"({differs}), so the recipe's description would not say what the published model is")
        import json

        wall = [json.loads(x) for x in (Path(a.publish) / "metrics.jsonl").read_text().splitlines()]
        wall_s = max((e.get("wall_s") or 0.0) for e in wall if e.get("event") in ("phase_end", "end"))
        info = {"config": f"configs/{cfg.name}.yml", "budget": cfg.budget, "note": a.note,
                "overrides": overrides_from(cfg),  # what the run was told, read back from its config.yml
                "hardware": a.hardware or (hardware() + _load()), "wall_time_s": round(wall_s, 1),
                "description": a.description or (r.description if r else "")}
        if a.continues:
            info.update(continued_entry(read_manifest().get(a.names[0], {}), info))
        if a.nae_iterations is not None:
            info["nae_iterations"] = a.nae_iterations
        if a.weights == "ema":
            info["ema"] = cfg.train.nae.ema
        metrics = publish_run(a.publish, a.names[0], info, ood=r.ood if r else None,
                              eval_n=r.eval_n if r else 1000, stage=a.stage, weights=a.weights)
        print(f"published {a.publish} as {a.names[0]} (stage {a.stage}): {metrics}")
        return metrics
    if a.list:
        for k, r in sorted(RECIPES.items()):
            print(f"{k:28s} {r.config:16s} {r.description}")
        return
    for name in a.names or sorted(RECIPES):
        make(name, resume=a.resume)


if __name__ == "__main__":
    main()
