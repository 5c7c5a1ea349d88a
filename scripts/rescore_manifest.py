"""Re-measures the metrics of published models with the current metric code, on the very test
images they were measured on when they were published, and with ``--write`` puts the new
FPR@95 into ``pretrained/manifest.json``.

    python scripts/rescore_manifest.py mnist_ood_nae mnist_holdout_1           # compare only
    python scripts/rescore_manifest.py mnist_ood_nae mnist_holdout_1 --write   # and update fpr95

Why: the manifest's ``fpr95`` and ``ae_fpr95`` were measured when ``fpr95`` was the share of
the *inliers* flagged at the threshold that catches 95% of the outliers.  It is now the standard
FPR@95, the share of the *outliers* accepted when 95% of the inliers are kept
(:func:`nae.metrics.fpr_at_95_tpr`), the number the notebooks' tables show.

How the entries were measured (``scripts/make_pretrained.py``, ``publish_run``, which
``publish_if_better.py`` goes through): :func:`nae.evaluate.evaluate_model` on the published
fp16 files (``load_pretrained(name)`` for the NAE, ``which="ae"`` for its AE), in fp32, with
the run's config.yml, on the first ``eval_n`` test images of the inliers and of each outlier set
(entries from before ``eval_n`` was recorded: their ``n_in``, as
:func:`nae.pretrained.measured_on` reads them).  This script calls the same function the same
way, on the sets whose stored AUROC is not null (sets absent when the model was published are
skipped).

The AUROC does not depend on the FPR@95 convention, so it checks that the images and the weights
are the same ones: when a re-measured AUROC differs from the stored one by more than
:data:`TOLERANCE`, a set has another number of images, or a set cannot be scored here, the script
refuses (exit status 1) and writes nothing, for any of the models named.  ``--write`` changes
only ``fpr95`` / ``ae_fpr95`` of the entries named and records ``fpr95_definition`` and
``fpr95_rescored`` beside them in ``metrics``.  The manifest is written as every publish writes
it (:func:`nae.pretrained.update_entry`: under the publishers' lock, to a temporary file moved
into place with ``os.replace``, indent 2 and sorted keys, the file's own format; a file in
another format is refused rather than reformatted).  The manifest's ``files`` hashes cover the
model files, not the manifest itself, so the models still load and verify.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nae.errors import NAEError  # noqa: E402
from nae.metrics import FPR95_DEFINITION  # noqa: E402
from nae.pretrained import MANIFEST, PRETRAINED_DIR, read_manifest, update_entry  # noqa: E402

#: the largest difference between a stored and a re-measured AUROC that still counts as the
#: same images and weights (the stored ones were measured in fp32 on the same files; only the
#: order of floating-point operations, e.g. another CPU's kernels, may differ)
TOLERANCE = 2e-3
#: (label, prefix of the metrics' keys, the weights ``load_pretrained`` loads for them)
MODELS = (("NAE", "", "final"), ("AE", "ae_", "ae"))


def eval_n(metrics: dict):
    """The number of test images per set the metrics were measured on (``None``: all of them)."""
    return metrics["eval_n"] if "eval_n" in metrics else metrics.get("n_in")


def present_sets(metrics: dict, key: str) -> list:
    """The sets with a stored value of ``key`` (``auroc``, ``ae_auroc``); absent ones are null."""
    return [s for s, v in (metrics.get(key) or {}).items() if v is not None]


def measure(name: str, which: str, sets, n, root=None) -> dict:
    """The result of :func:`nae.evaluate.evaluate_model` for the published weights ``which`` of
    ``name``, as ``make_pretrained.publish_run`` measured them: the run's config, fp32."""
    from nae.config import load_saved_config
    from nae.evaluate import evaluate_model
    from nae.pretrained import load_pretrained

    model = load_pretrained(name, which=which, root=root)
    cfg = load_saved_config(model.run_dir / "config.yml")
    return evaluate_model(model, cfg, sets, n=n, precision="fp32")


def rescore(name: str, entry: dict, root=None) -> dict:
    """Re-measures the image metrics of one manifest entry.  Returns ``{"rows": [...],
    "problems": [...], "metrics": new metrics}``: one row per model and set (stored and new
    AUROC and FPR@95), the reasons not to trust the new numbers, and the entry's ``metrics``
    with the new ``fpr95`` / ``ae_fpr95`` (``None`` when the entry has no image metrics)."""
    m = entry.get("metrics") or {}
    n = eval_n(m)
    rows, problems, new = [], [], dict(m)
    for label, prefix, which in MODELS:
        k_auroc, k_fpr = prefix + "auroc", prefix + "fpr95"
        sets = present_sets(m, k_auroc)
        if not sets:
            continue
        try:
            res = measure(name, which, sets, n, root)
        except NAEError as e:
            problems.append(f"{name} {label}: could not be evaluated: {str(e).splitlines()[0]}")
            continue
        if m.get("n_in") is not None and res["n_in"] != m["n_in"]:
            problems.append(f"{name} {label}: {res['n_in']} inlier test images now, {m['n_in']} when published")
        fpr = dict(m.get(k_fpr) or {})
        for s in sets:
            a_old, a_new = m[k_auroc][s], res["auroc"].get(s)
            n_old, n_new = (m.get("n") or {}).get(s), res["n"].get(s)
            rows.append({"model": label, "set": s, "n": n_new, "auroc": a_old, "auroc_now": a_new,
                         "fpr95": (m.get(k_fpr) or {}).get(s), "fpr95_now": res["fpr95"].get(s)})
            if a_new is None:
                why = (str(res["absent"].get(s, "")).splitlines() or ["not scored"])[0]
                problems.append(f"{name} {label} {s}: cannot be scored on this machine ({why}), so its fpr95 "
                                f"cannot be measured again; get the data set and run again")
                continue
            if abs(a_new - a_old) > TOLERANCE:
                problems.append(f"{name} {label} {s}: AUROC {a_new:.4f} now, {a_old:.4f} stored (differs by "
                                f"{abs(a_new - a_old):.4f} > {TOLERANCE:g}: other images or other weights)")
            if n_old is not None and n_new != n_old:
                problems.append(f"{name} {label} {s}: {n_new} test images now, {n_old} when published")
            fpr[s] = res["fpr95"][s]
        new[k_fpr] = fpr
    if not rows:
        return {"rows": [], "problems": problems, "metrics": None, "n": n}
    new["fpr95_definition"] = FPR95_DEFINITION
    new["fpr95_rescored"] = (f"{time.strftime('%Y-%m-%d')}, scripts/rescore_manifest.py: fpr95 and ae_fpr95 "
                             f"measured again on the same test images (AUROC reproduced within {TOLERANCE:g}); "
                             f"they were the share of the inliers flagged when 95% of the outliers are caught")
    return {"rows": rows, "problems": problems, "metrics": new, "n": n}


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def report(name: str, result: dict) -> str:
    """The comparison of :func:`rescore` as a plain-text table."""
    if not result["rows"] and not result["problems"]:
        return f"{name}: no image metrics in its manifest entry, nothing to re-measure"
    n = result["n"]
    lines = [f"{name}: test images per set: {'all' if n is None else n}, fp32"]
    table = [("model", "outlier set", "n", "AUROC stored", "AUROC now", "diff", "FPR@95 stored (old)", "FPR@95 now")]
    for r in result["rows"]:
        diff = "" if r["auroc_now"] is None else f"{r['auroc_now'] - r['auroc']:+.4f}"
        table.append((r["model"], r["set"], "-" if r["n"] is None else str(r["n"]), _f(r["auroc"]),
                      _f(r["auroc_now"]), diff, _f(r["fpr95"]), _f(r["fpr95_now"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for j, row in enumerate(table):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if j == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines.append(f"  FPR@95 stored: inliers flagged at 95% of the outliers caught; now: {FPR95_DEFINITION}")
    return "\n".join(lines)


def write(before: dict, new: dict, root=None) -> None:
    """Puts the ``metrics`` of ``new`` (``{name: metrics}``) into the manifest, when the entries are
    still those that were measured (a publish meanwhile is not overwritten) and the file is in the
    format :func:`nae.pretrained.write_manifest` writes (so nothing else of it changes)."""
    path = Path(root or PRETRAINED_DIR) / MANIFEST
    text = path.read_text()
    now = json.loads(text)
    if text != json.dumps(now, indent=2, sort_keys=True) + "\n":
        raise SystemExit(f"refused: {path} is not in the format the publishers write (indent 2, sorted keys); "
                         f"writing it would reformat it: nothing written")
    changed = [name for name in new if now.get(name) != before[name]]
    if changed:
        raise SystemExit(f"refused: the entries of {', '.join(changed)} changed while they were measured "
                         f"(published again?): nothing written; run the script again")
    for name, metrics in new.items():
        update_entry(name, {"metrics": metrics}, root=root)


def main(argv=None, root=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", help="published models (names in pretrained/manifest.json)")
    p.add_argument("--write", action="store_true",
                   help="update fpr95 / ae_fpr95 of these entries in the manifest (default: compare only)")
    a = p.parse_args(argv)
    manifest = read_manifest(root)
    unknown = [n for n in a.names if n not in manifest]
    if unknown:
        p.error(f"not in the manifest: {', '.join(unknown)} (published: {', '.join(sorted(manifest))})")
    new, problems = {}, []
    for name in dict.fromkeys(a.names):
        result = rescore(name, manifest[name], root)
        print(report(name, result), flush=True)
        problems += result["problems"]
        if result["metrics"] is not None:
            new[name] = result["metrics"]
    if problems:
        print("refused, nothing written:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    if not a.write:
        print("AUROC reproduced within {:g} everywhere; dry run: nothing written (--write updates fpr95 / "
              "ae_fpr95 of {})".format(TOLERANCE, ", ".join(new) or "no entry"))
        return 0
    write({name: manifest[name] for name in new}, new, root)
    print(f"updated fpr95 / ae_fpr95 of {', '.join(new) or 'no entry'} in {Path(root or PRETRAINED_DIR) / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
