"""Finishes a run that continued a published model, evaluates it on the test splits, and
publishes it in place of the published model only if it is better there.

    python scripts/publish_if_better.py RUN_DIR NAME --note "what the continuation did"
    python scripts/publish_if_better.py RUN_DIR NAME --dry-run     # evaluate and compare only

The run (e.g. ``python -m nae train mnist_holdout --out RUN "data.holdout=[8]"
train.init_ae=mnist_holdout_8 train.init_nae=mnist_holdout_8 ...``, stopped by
``--max-minutes`` or SIGTERM) is first finished at its last checkpoint
(``nae train --resume --out RUN train.nae.max_iters=STEP``: no further iteration, the final
``model.pt`` is written).  "Better" is the mean test AUROC over the recipe's outlier sets
(``nae.tutorial.recipes``; the held-out digit for a hold-out model), on the recipe's number
of test images, against the mean stored in ``pretrained/manifest.json``.  The comparison is
printed either way; the published model is replaced only when the run is better, with the
note in its manifest entry (``scripts/make_pretrained.py --publish`` does the publishing).
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("name", help="the published model the run continued (a recipe name, e.g. mnist_holdout_8)")
    p.add_argument("--note", default="", help="the manifest's note: what the continuation did")
    p.add_argument("--description", default="", help="the manifest's description (default: the recipe's)")
    p.add_argument("--hardware", default="", help="where the continuation trained (default: this machine)")
    p.add_argument("--dry-run", action="store_true", help="evaluate and compare, publish nothing")
    a = p.parse_args(argv)

    from nae.evaluate import evaluate_model
    from nae.pretrained import read_manifest
    from nae.run import load_run
    from nae.tutorial.recipes import get_recipe

    recipe = get_recipe(a.name)
    finish(a.run_dir)
    model = load_run(a.run_dir)
    res = evaluate_model(model, model.config, recipe.ood, n=recipe.eval_n, precision="fp32")
    old = read_manifest()[a.name]["metrics"]["auroc"]
    new_mean, old_mean = mean_auroc(res["auroc"]), mean_auroc(old)
    print(f"{a.name}: test AUROC (n = {res['n_in']} inliers) run {json.dumps(res['auroc'])} "
          f"mean {new_mean:.4f}; published {json.dumps(old)} mean {old_mean:.4f}", flush=True)
    if new_mean <= old_mean:
        print("not better: the published model stays")
        return 1
    if a.dry_run:
        print("better (dry run: nothing published)")
        return 0
    from make_pretrained import main as make_main

    args = [a.name, "--publish", str(a.run_dir), "--note", a.note]
    args += ["--description", a.description] if a.description else []
    args += ["--hardware", a.hardware] if a.hardware else []
    make_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
