"""Finishes a run that continued a published model, compares the two on the *validation*
split, and publishes the run in place of the published model only if it is better there.

    python scripts/publish_if_better.py RUN_DIR NAME --note "what the continuation did" --description "what the model is"
    python scripts/publish_if_better.py RUN_DIR NAME --dry-run     # compare only

The run (e.g. ``python -m nae train mnist_holdout --out RUN "data.holdout=[8]"
train.init_ae=mnist_holdout_8 train.init_nae=mnist_holdout_8 ...``, stopped by
``--max-minutes`` or SIGTERM) is first finished at its last checkpoint
(``nae train --resume --out RUN train.nae.max_iters=STEP``: no further iteration, the final
``model.pt`` is written).

"Better" is the mean validation AUROC over the outlier sets the run watched during training
(``data.ood_val`` and ``data.ood_target``; the held-out digit for a hold-out model), both
models scored on the same validation images (the run's ``data.n_val`` of each side).  The
test split decides nothing: a short NAE run's AUROC moves by a few hundredths between
validations, so keeping whichever of two models scores higher on the test images would
ratchet the published test numbers upwards by chance.  The test AUROCs of both are printed
for information (the manifest entry records the run's).  The published model is replaced
only when the run is better, with the note in its manifest entry
(``scripts/make_pretrained.py --publish`` does the publishing; for a run that continued the
published weights, ``--continues``: the entry keeps the earlier note, hardware and wall time
before the run's, and the AE file stays byte for byte when the AE is unchanged).  Either way the comparison is
written to ``RUN_DIR/publish_decision.json``.  ``--against DIR`` compares with another run
directory instead (e.g. the published model as it was before an earlier continuation).

``--which ema`` compares (and would publish, as the model's ``model.pt``) the run's moving
average of its NAE weights (``ema.pt``, runs trained with ``train.nae.ema``) instead of its
last weights; its record is ``publish_decision_ema.json``.  Decide in advance which of the
two you will publish: comparing both and keeping the better is choosing by validation twice.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def last_checkpoint_step(run_dir: Path) -> tuple[str, int]:
    """(phase, step) of the run's last checkpoint event in ``metrics.jsonl``."""
    from nae.diagnostics import read_metrics

    ckpts = [e for e in read_metrics(run_dir) if e.get("event") == "checkpoint"]
    if not ckpts:
        raise SystemExit(f"{run_dir} has no checkpoint yet: nothing to finish or publish")
    return ckpts[-1]["phase"], int(ckpts[-1]["step"])


def finish(run_dir: Path) -> None:
    """Writes the final model.pt of a run stopped during its NAE phase (no further iteration)."""
    if (run_dir / "model.pt").is_file():
        return
    phase, step = last_checkpoint_step(run_dir)
    if phase != "nae":
        raise SystemExit(f"{run_dir} stopped in its {phase!r} phase: continue it first "
                         f"(python -m nae train --resume --out {run_dir})")
    print(f"finishing {run_dir} at NAE step {step}", flush=True)
    subprocess.run([sys.executable, "-m", "nae", "train", "--resume", "--out", str(run_dir), "--quiet",
                    f"train.nae.max_iters={step}"], check=True)


def mean_auroc(auroc: dict) -> float:
    vals = [v for v in auroc.values() if v is not None]
    return sum(vals) / len(vals)


def validation_aurocs(model, cfg) -> dict:
    """``{set: AUROC}`` on the validation split of ``cfg`` for each watched outlier set."""
    from nae.evaluate import validation_auroc, watched_sets

    return {name: validation_auroc(model, cfg, name) for name in watched_sets(cfg)}


def nae_iterations(run_dir: Path) -> int:
    """The NAE iterations a run trained: the largest step of its NAE-phase events."""
    from nae.diagnostics import read_metrics

    return max((int(e["step"]) for e in read_metrics(run_dir) if e.get("phase") == "nae"), default=0)


def published_test(model, recipe) -> dict | None:
    """The published model's test AUROCs from its manifest entry (measured in fp32 on the stored
    files when it was published), when they cover the recipe's sets and test size; else None."""
    from nae.pretrained import measured_on

    m = (getattr(model, "manifest", None) or {}).get("metrics") or {}
    if not measured_on(m, "auroc", recipe.ood, recipe.eval_n):
        return None
    return {"auroc": m["auroc"], "n_in": m["n_in"]}


def published_iterations(against, run_dir: Path, name: str) -> int:
    """The NAE iterations the published model had that the run's own log does not count: none
    when the run *is* the published run resumed and trained further (its log holds them all) or
    a new run from scratch (its own AE: nothing came before it), the published count when the
    run continued the published weights (``train.init_nae``)."""
    if not continued(run_dir, name):
        return 0
    return getattr(against, "manifest", {}).get("nae_iterations") or (against.config.train.nae.max_iters or 0)


def continued(run_dir: Path, name: str) -> bool:
    """True when the run continued the published weights (``train.init_nae``/``init_ae`` naming
    them), not resumed the published run itself: the new manifest entry then keeps the earlier
    entry's note, hardware and wall time before the run's (``make_pretrained.py --continues``)."""
    from nae.pretrained import continues_published, extends_published

    return continues_published(run_dir, name) and not extends_published(run_dir, name)


def decide(val_run: dict, val_against: dict, ties: bool = False) -> bool:
    """True when the run is better: a higher mean validation AUROC over the watched sets (with
    ``ties``: at least as high, for watched sets on which both models saturate)."""
    if ties:
        return mean_auroc(val_run) >= mean_auroc(val_against)
    return mean_auroc(val_run) > mean_auroc(val_against)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("name", help="the published model the run continued (a recipe name, e.g. mnist_holdout_8)")
    p.add_argument("--note", default="", help="the manifest's note: what the continuation did (a run that continued "
                        "the published weights keeps the earlier entry's note before it, and its hardware and wall time)")
    p.add_argument("--description", default="", help="the manifest's description of the new model (needed unless --dry-run)")
    p.add_argument("--hardware", default="", help="where the continuation trained (default: read from the run's log, e.g. "
                        "'Intel Xeon with AMX, 1 thread, bf16')")
    p.add_argument("--against", type=Path, default=None,
                   help="compare with this run directory instead of the published model (implies --dry-run)")
    p.add_argument("--against-label", default=None, help="what --against is, for the printout and the record")
    p.add_argument("--dry-run", action="store_true", help="compare, publish nothing")
    p.add_argument("--which", choices=["final", "ema"], default="final",
                   help="the run's weights to compare (and publish): its last ones, or the moving average of "
                        "its NAE weights (ema.pt, runs with train.nae.ema)")
    p.add_argument("--ties", action="store_true",
                   help="publish when the run is at least as good on validation, not only better: for a run that "
                        "brings the model to the schedule asked for (e.g. its AE trained to the original's early "
                        "stopping) when the watched sets saturate (AUROC 1 on both sides); decide it before "
                        "looking, and say so in --note")
    a = p.parse_args(argv)

    from nae.diagnostics import run_hardware
    from nae.evaluate import evaluate_model
    from nae.pretrained import load_pretrained
    from nae.run import load_run
    from nae.tutorial.recipes import get_recipe

    recipe = get_recipe(a.name)
    dry = a.dry_run or a.against is not None
    if not dry and not a.description:  # the recipe's describes the recipe's run, not this one
        p.error(f"--description is needed: if the run is better it replaces {a.name}, and the manifest must say "
                f"what the new model is (the recipe's description is that of the recipe's own run), e.g. "
                f"--description \"{recipe.description}, then N iterations more at ...\"")
    finish(a.run_dir)
    model = load_run(a.run_dir, which=a.which)
    against = load_run(a.against, verify=False) if a.against else load_pretrained(a.name)
    label = a.against_label or (str(a.against) if a.against else f"published {a.name}")
    cfg = model.config
    val = {"run": validation_aurocs(model, cfg), "against": validation_aurocs(against, cfg)}
    print(f"{a.name}: validation AUROC (n_val = {cfg.data.n_val} of each side): run {json.dumps(val['run'])} "
          f"mean {mean_auroc(val['run']):.4f}; {label} {json.dumps(val['against'])} "
          f"mean {mean_auroc(val['against']):.4f}", flush=True)
    better = decide(val["run"], val["against"], ties=a.ties)
    # the published model's iterations before the run's own (0 when the run's log counts them all)
    before = None if a.against else published_iterations(against, a.run_dir, a.name)
    record = {"name": a.name, "run": str(a.run_dir), "against": label, "date": time.strftime("%Y-%m-%d"),
              "nae_iterations": nae_iterations(a.run_dir), "nae_iterations_before": before, "n_val": cfg.data.n_val,
              "validation_auroc": val, "weights": a.which, "better": better, "published": False,
              "rule": "at least as good on validation (--ties)" if a.ties else "better on validation"}
    # the test split, for information only; each model is scored there once: the published one's
    # numbers are in its manifest entry, a run that gets published is scored as published
    test = {"against": published_test(against, recipe) if not a.against else None}
    if better and not dry:
        from make_pretrained import main as make_main

        args = [a.name, "--publish", str(a.run_dir), "--note", a.note,
                "--nae-iterations", str(before + record["nae_iterations"])]
        args += ["--description", a.description] if a.description else []
        args += ["--hardware", a.hardware or run_hardware(a.run_dir)]
        args += ["--weights", a.which]
        args += ["--continues"] if continued(a.run_dir, a.name) else []
        published = make_main(args)
        record["published"] = True  # only once the publishing went through
        test["run"] = {"auroc": published["auroc"], "n_in": published["n_in"]}
    for k, m in (("run", model), ("against", against)):
        if test.get(k) is None:
            test[k] = evaluate_model(m, cfg, recipe.ood, n=recipe.eval_n, precision="fp32")
    print(f"for information, test AUROC (n = {test['run']['n_in']} inliers): run {json.dumps(test['run']['auroc'])}; "
          f"{label} {json.dumps(test['against']['auroc'])}", flush=True)
    record.update({"test_auroc": {k: r["auroc"] for k, r in test.items()}, "n_test_in": test["run"]["n_in"]})
    fname = "publish_decision.json" if a.which == "final" else f"publish_decision_{a.which}.json"
    (a.run_dir / fname).write_text(json.dumps(record, indent=1) + "\n")
    print("published" if record["published"] else "would be published (dry run: nothing published)" if better
          else "not better on the validation split: kept " + label, flush=True)
    return 0 if better else 1

if __name__ == "__main__":
    sys.exit(main())
