"""Finishes a run that continued a published model, compares the two on the *validation*
split, and publishes the run in place of the published model only if it is better there.

    python scripts/publish_if_better.py RUN_DIR NAME --note "what the continuation did"
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
(``scripts/make_pretrained.py --publish`` does the publishing).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
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


def watched_sets(cfg) -> list[str]:
    """The outlier sets a run validates against during NAE training, in order, no repeats."""
    names = [cfg.data.ood_val, cfg.data.ood_target]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]


def validation_aurocs(model, cfg) -> dict:
    """``{set: AUROC}`` on the validation split of ``cfg`` for each watched outlier set."""
    from nae.tutorial.mnist_figures import validation_auroc

    return {name: validation_auroc(model, cfg, name) for name in watched_sets(cfg)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("name", help="the published model the run continued (a recipe name, e.g. mnist_holdout_8)")
    p.add_argument("--note", default="", help="the manifest's note: what the continuation did")
    p.add_argument("--description", default="", help="the manifest's description (default: the recipe's)")
    p.add_argument("--hardware", default="", help="where the continuation trained (default: this machine)")
    p.add_argument("--dry-run", action="store_true", help="compare, publish nothing")
    a = p.parse_args(argv)

    from nae.evaluate import evaluate_model
    from nae.pretrained import load_pretrained, read_manifest
    from nae.run import load_run
    from nae.tutorial.recipes import get_recipe

    recipe = get_recipe(a.name)
    finish(a.run_dir)
    model, published = load_run(a.run_dir), load_pretrained(a.name)
    cfg = model.config
    val_new, val_old = validation_aurocs(model, cfg), validation_aurocs(published, cfg)
    new_mean, old_mean = mean_auroc(val_new), mean_auroc(val_old)
    print(f"{a.name}: validation AUROC (n_val = {cfg.data.n_val}) run {json.dumps(val_new)} mean {new_mean:.4f}; "
          f"published {json.dumps(val_old)} mean {old_mean:.4f}", flush=True)
    res = evaluate_model(model, cfg, recipe.ood, n=recipe.eval_n, precision="fp32")
    print(f"for information, test AUROC (n = {res['n_in']} inliers): run {json.dumps(res['auroc'])}; "
          f"published {json.dumps(read_manifest()[a.name]['metrics']['auroc'])}", flush=True)
    if new_mean <= old_mean:
        print("not better on the validation split: the published model stays")
        return 1
    if a.dry_run:
        print("better on the validation split (dry run: nothing published)")
        return 0
    from make_pretrained import main as make_main

    args = [a.name, "--publish", str(a.run_dir), "--note", a.note]
    args += ["--description", a.description] if a.description else []
    args += ["--hardware", a.hardware] if a.hardware else []
    make_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
