"""Does bf16 change any conclusion?  The same short recipe trained in fp32 and in bf16.

    python benchmarks/precision_parity.py --config mnist_ood --json parity.json
        [--seeds 1 2 3] [--ae-iters 500] [--nae-iters 30] [--batch 32] [--n-eval 1000] [--threads 1]

For each precision and seed it trains ``CONFIG`` with a short schedule (``--ae-iters`` AE
iterations at lr 3e-4, then ``--nae-iters`` NAE iterations at lr 1e-4 with the config's
chains, batch ``--batch``), evaluates it in the precision it was trained in, and reports:

* per outlier set, the AUROC mean +- std over the seeds, for each precision, and whether
  the difference of the means lies within the seed-to-seed spread (the larger std);
* on the *same* weights (each fp32-trained model), energies computed in fp32 and in bf16:
  their correlation, and the median and maximum of |E_bf16 - E_fp32| / E_fp32;
* the final E(x-)/E(x+) of every run (means over the last tenth of its NAE steps).

bf16 can be forced on any CPU; where it is not fast (see ``nae.speed``) the runs are
slower, not different.  Every figure comes with the CPU's ISA line and the wall times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nae.config import load_config  # noqa: E402
from nae.data import default_ood  # noqa: E402
from nae.evaluate import evaluate_model  # noqa: E402
from nae.speed import autocast, isa_line  # noqa: E402
from nae.trainer import Trainer  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def short_recipe(args, seed: int, precision: str) -> list:
    return [f"seed={seed}", f"train.precision={precision}", f"data.batch_size={args.batch}",
            f"data.n_val={args.n_eval}", "train.ae.lr=3e-4", f"train.ae.max_iters={args.ae_iters}",
            f"train.ae.val_every={max(1, args.ae_iters // 5)}", "train.nae.lr=1e-4",
            f"train.nae.max_iters={args.nae_iters}", f"train.nae.val_every={args.nae_iters}",
            f"train.ckpt_every={10 ** 6}"]


def last_tenth_ratio(trainer) -> float:
    e_pos = [v for _, v in trainer.history.series("e_pos", phase="nae")]
    e_neg = [v for _, v in trainer.history.series("e_neg", phase="nae")]
    k = max(1, len(e_pos) // 10)
    return float(np.mean(e_neg[-k:]) / np.mean(e_pos[-k:]))


@torch.no_grad()
def energies(model, x, precision, batch=256):
    with autocast("cpu", precision):
        return model.predict(x, batch).double().numpy()


def agreement(model, cfg, ood, n) -> dict:
    """fp32 against bf16 energies of one model on the inlier test set and every outlier set."""
    from nae.data import indist_test_set
    from nae.data import outlier_set

    xs = [indist_test_set(cfg, n).as_float()]
    for name in ood:
        try:
            xs.append(outlier_set(cfg, name, "test", n=n).as_float())
        except Exception:  # noqa: BLE001 - an absent set is simply not compared
            pass
    x = torch.cat(xs)
    e32, e16 = energies(model, x, "fp32"), energies(model, x, "bf16")
    rel = np.abs(e16 - e32) / np.abs(e32)
    return {"n": int(len(x)), "corr": float(np.corrcoef(e32, e16)[0, 1]),
            "rel_median": float(np.median(rel)), "rel_max": float(rel.max())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="mnist_ood")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--ae-iters", type=int, default=500)
    ap.add_argument("--nae-iters", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--out-dir", default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # "bf16 is slow here": known, reported below
    root = Path(args.out_dir or tempfile.mkdtemp(prefix="nae-parity-"))
    print(f"precision_parity: {args.config}, seeds {args.seeds}, AE {args.ae_iters} + NAE {args.nae_iters} "
          f"iterations at batch {args.batch}, {args.threads} thread(s); CPU {isa_line()}; runs in {root}", flush=True)

    runs, agree = [], []
    for seed in args.seeds:
        for prec in PRECISIONS:
            cfg = load_config(args.config, budget="full", overrides=short_recipe(args, seed, prec))
            ood = default_ood(cfg)
            t0 = time.time()
            tr = Trainer(cfg, root / f"{prec}-seed{seed}", progress=False)
            tr.fit()
            wall = time.time() - t0
            model = tr.model.eval()
            res = evaluate_model(model, cfg, ood, n=args.n_eval, precision=prec)
            run = {"precision": prec, "seed": seed, "wall_s": round(wall, 1), "auroc": res["auroc"],
                   "fpr95": res["fpr95"], "ratio_last_tenth": last_tenth_ratio(tr)}
            runs.append(run)
            print(f"  {prec} seed {seed}: {wall:6.0f} s, E(x-)/E(x+) {run['ratio_last_tenth']:.3f}, AUROC "
                  + ", ".join(f"{k} {v:.4f}" for k, v in res["auroc"].items() if v is not None), flush=True)
            if prec == "fp32":
                a = {"seed": seed, **agreement(model, cfg, ood, args.n_eval)}
                agree.append(a)
                print(f"    same weights, fp32 vs bf16 energies on {a['n']} images: corr {a['corr']:.6f}, "
                      f"|rel diff| median {a['rel_median']:.2e}, max {a['rel_max']:.2e}", flush=True)

    sets = [k for k in runs[0]["auroc"] if runs[0]["auroc"][k] is not None]
    table, ok_all = [], True
    for name in sets:
        row = {"set": name}
        for prec in PRECISIONS:
            vals = [r["auroc"][name] for r in runs if r["precision"] == prec]
            row[prec] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
        diff = abs(row["fp32"]["mean"] - row["bf16"]["mean"])
        spread = max(row["fp32"]["std"], row["bf16"]["std"])
        row["diff"], row["spread"], row["within_spread"] = diff, spread, diff <= spread
        ok_all &= row["within_spread"]
        table.append(row)

    print("\n| outlier set | fp32 AUROC | bf16 AUROC | difference | seed spread (max std) | within spread |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['set']} | {r['fp32']['mean']:.4f} ± {r['fp32']['std']:.4f} | {r['bf16']['mean']:.4f} ± "
              f"{r['bf16']['std']:.4f} | {r['diff']:.4f} | {r['spread']:.4f} | {'yes' if r['within_spread'] else 'NO'} |")
    for prec in PRECISIONS:
        rs = [r for r in runs if r["precision"] == prec]
        ratios = ", ".join(f"{r['ratio_last_tenth']:.3f}" for r in rs)
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in rs)
        print(f"{prec}: E(x-)/E(x+) over the last tenth {ratios}; wall {walls} s")
    print(f"energy agreement on the same weights: corr >= {min(a['corr'] for a in agree):.6f}, median |rel diff| "
          f"<= {max(a['rel_median'] for a in agree):.2e}, max |rel diff| {max(a['rel_max'] for a in agree):.2e}")
    print(f"acceptance (every set's AUROC difference within the seed spread): {'PASS' if ok_all else 'FAIL'}")
    out = {"config": args.config, "cpu": isa_line(), "torch": torch.__version__, "threads": args.threads,
           "recipe": short_recipe(args, "SEED", "PRECISION"), "runs": runs, "table": table, "agreement": agree,
           "pass": ok_all, "date": time.strftime("%Y-%m-%d")}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
