#!/usr/bin/env python3
"""One time-boxed training job: how the published MNIST and CIFAR-10 models were trained on a
GPU lent for 15 minutes (2026-11-30: 13 of these jobs at once on one H200, sharing it through
CUDA MPS, with ``--ae-min 3`` (CIFAR-10: 3.2) and a common deadline 6.3 minutes after the start).

    python scripts/timeboxed_train.py NAME CONFIG --out RUN --pkg PKG --ae-min 3 \
        --deadline $(($(date +%s) + 420)) [key=value ...]

AE phase until the original early stopping or AE_MIN minutes (then it ends at the end of the
current epoch), NAE until DEADLINE (unix seconds), then the run is finished (model.pt written).
With --wait-ae FILE the job is an NAE-only run from that ae.pt (train.init_ae), started when
the file exists.  Writes fp16 copies of ae.pt/model.pt (and ema.pt, with train.nae.ema) plus
config.yml and metrics.jsonl to PKG/NAME/, then an empty PKG/NAME/PACKAGED.  ``--resume-only``
continues such a job's run directory (the published runs were
resumed once this way, after the first attempt stopped at a bug in restoring RNG states on a GPU,
fixed in nae/checkpoint.py).
"""
import argparse
import os
import shutil
import sys
import time
import traceback

p = argparse.ArgumentParser()
p.add_argument("name")
p.add_argument("config")
p.add_argument("--out", required=True)
p.add_argument("--pkg", required=True)
p.add_argument("--ae-min", type=float, default=None)
p.add_argument("--deadline", type=float, required=True)
p.add_argument("--wait-ae", default=None)
p.add_argument("--device", default="cuda")
p.add_argument("--budget", default="full")
p.add_argument("--precision", default="fp32", help="fp32 (the published GPU runs), bf16 or auto")
p.add_argument("--resume-only", action="store_true")
p.add_argument("overrides", nargs="*")
a, _extra = p.parse_known_args()
a.overrides = list(a.overrides) + _extra

from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

torch.set_num_threads(1)
from nae.config import load_config  # noqa: E402
from nae.pretrained import _half_copy  # noqa: E402
from nae.trainer import train  # noqa: E402


def log(*m):
    print(f"[{a.name} {time.strftime('%H:%M:%S')}]", *m, flush=True)


def left():
    return (a.deadline - time.time()) / 60


def fit(**kw):
    t = train(None, a.out, resume=True, progress=False, device=a.device, **kw)
    log("fit", {k: t.state.get(k) for k in ("phase", "step", "epoch", "done")})
    return t


try:
    ov = list(a.overrides)
    if a.resume_only:
        import json
        ev = [json.loads(x) for x in open(os.path.join(a.out, "metrics.jsonl")) if '"checkpoint"' in x][-1]
        if ev["phase"] == "ae":
            t = fit(extend=[("train.ae.epochs", int(ev["epoch"]) + 1)], max_minutes=max(left(), 0.05))
        else:
            t = fit(max_minutes=max(left(), 0.05))
    elif a.wait_ae:
        while not os.path.exists(a.wait_ae):
            if left() < 1.0:
                log("no AE in time")
                sys.exit(3)
            time.sleep(2)
        time.sleep(2)
        ov.append(f"train.init_ae={a.wait_ae}")
    if not a.resume_only:
        cfg = load_config(a.config, a.budget, ov)
        cfg.train.precision = a.precision
        first = min(a.ae_min, left()) if (a.ae_min and not a.wait_ae) else left()
        t = train(cfg, a.out, max_minutes=max(first, 0.05), progress=False, device=a.device)
        log("fit", {k: t.state.get(k) for k in ("phase", "step", "epoch", "done")})
    if t.state["phase"] == "ae" and not t.state["done"]:  # AE box over: end the AE at this epoch's end
        t = fit(extend=[("train.ae.epochs", int(t.state["epoch"]) + 1)], max_minutes=max(left(), 0.05))
    if t.state["phase"] == "nae" and not t.state["done"] and left() > 0.1:
        t = fit(max_minutes=left())
    if not t.state["done"] and t.state["phase"] == "nae" and t.state["step"] > 0:
        t = fit(extend=[("train.nae.max_iters", int(t.state["step"]))])
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    log("FAILED")
finally:
    dst = os.path.join(a.pkg, a.name)
    os.makedirs(dst, exist_ok=True)
    for f in ("config.yml", "metrics.jsonl"):
        if os.path.exists(os.path.join(a.out, f)):
            shutil.copy2(os.path.join(a.out, f), dst)
    for f in ("ae.pt", "model.pt", "ema.pt"):
        if os.path.exists(os.path.join(a.out, f)):
            from pathlib import Path

            _half_copy(Path(a.out) / f, Path(dst) / f)
    log("packaged", sorted(os.listdir(dst)))
    open(os.path.join(dst, "PACKAGED"), "w").close()  # scripts/device_window.py collect waits for this
