#!/usr/bin/env python3
"""One lane (one CPU core) of the MNIST campaign of issue 12: new runs whose AE is trained to the
original's early stopping, then a fixed NAE phase from it, trained one after the other until a
deadline.  Run two lanes at most (one per core); give each its own models.

    NAE_DATA=... python scripts/mnist_campaign.py --until 18:05 holdout6 holdout1 ood
    python scripts/mnist_campaign.py --list          # the rule, each model's run directory and state

The rule, fixed before any of these runs was seen (``~/nae-runs/stop_schedule.log``):

* the config's full schedule for the AE (batch 128, lr 1e-4, up to 100 epochs, the original's
  early stopping: patience 4), on 1,000 validation images;
* then ``NAE_ITERS`` NAE iterations from that AE at the original's lr 1e-5 and chains, with two
  levers stated in notebook 02 and the manifest: 32 negatives per step (``sampler.n_negatives``,
  shown on digit 1) and a moving average of the weights (``train.nae.ema=0.99``, the candidate
  named in advance);
* precision ``auto`` (bf16 where it is native: AMX), one torch thread.

A model whose run directory holds a checkpoint is resumed; one that holds ``model.pt`` is done
(skipped).  When a run's AE phase has ended, its AE is kept as a milestone in the repository
(``benchmarks/results/mnist_campaign/RUN/``: ``ae.pt`` in float16, ``config.yml``, the AE phase's
log): on a machine without the run directory the NAE phase then starts from it
(``train.init_ae``) instead of training the AE again.  ``--milestones`` saves them now (and
does nothing else).  At the deadline the running job stops at a checkpoint (``--max-minutes``)
and the next session resumes it with the same command.  The lane then also keeps a *portable
copy* of the paused run in ``benchmarks/results/mnist_campaign/RUN/kept/`` (``nae.portable``:
float16 weights and moving average, replay buffer, step and log, no optimiser state; ``--keep``
does it for every paused run now): on a machine without the run directory, the same command
makes it from that copy and continues with a fresh optimiser (its log and manifest note say so)
instead of starting the NAE phase again.

A finished run is then compared with the published model on the validation split,
``--compare MODEL ...`` (``scripts/publish_if_better.py RUN NAME --which ema``, mnist_ood with
``--ties``: its watched sets saturate at 1), which publishes it when better and keeps the
decision in ``benchmarks/results/mnist_campaign/RUN/`` (the run is then done on every machine;
the kept AE goes when the published model holds it).

    python scripts/mnist_campaign.py --compare holdout1 holdout2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RUNS = Path(os.environ.get("NAE_RUNS", Path.home() / "nae-runs"))

#: NAE iterations of every new run (digit 8's new run levelled off after ~1,500 and reached
#: E(x-)/E(x+) 0.90 at 2,171)
NAE_ITERS = 2500
COMMON = ["data.n_val=1000", "sampler.n_negatives=32", "train.nae.val_every=50", "train.nae.ema=0.99",
          f"train.nae.max_iters={NAE_ITERS}", "train.ckpt_every=100"]

#: model -> (config, extra overrides, run directory name, published name); digit 8 is not here:
#: its published model already is such a run (AE to early stopping, then 2,171 + 4,562 NAE iterations)
MODELS = {f"holdout{k}": ("mnist_holdout", [f"data.holdout=[{k}]", f"seed={20 + k}"], f"h{k}es",
                          f"mnist_holdout_{k}") for k in range(10) if k != 8}
MODELS["ood"] = ("mnist_ood", ["seed=11"], "ood_es", "mnist_ood_nae")
MODELS["holdout6"] = ("mnist_holdout", ["data.holdout=[6]", "seed=12"], "h6es", "mnist_holdout_6")  # started first


MILESTONES = REPO / "benchmarks" / "results" / "mnist_campaign"
#: the folder of a run's portable copy in ``MILESTONES/RUN/`` (``--keep``; a new machine continues it)
KEPT = "kept"


def ae_ended(run: Path) -> bool:
    """True once the run's AE phase has ended (its ``ae.pt`` is final)."""
    from nae.diagnostics import ae_phase

    return (run / "ae.pt").is_file() and (run / "metrics.jsonl").is_file() and ae_phase(run)["ended"]


def save_milestone(model: str) -> Path | None:
    """Keeps the AE of ``model``'s run, once its phase has ended, in ``MILESTONES/RUN/`` (float16
    ``ae.pt``, ``config.yml``, ``metrics_ae.jsonl`` with the AE phase's log); the folder, or None.  A run that
    was compared and published keeps nothing here (the published model holds its AE).  A portable copy
    kept while the AE phase was still running (``kept/``) goes then: it is older than the milestone."""
    from nae.pretrained import _half_copy

    run = RUNS / MODELS[model][2]
    dest = MILESTONES / run.name
    if (dest / DECISION).is_file() and json.loads((dest / DECISION).read_text()).get("published"):
        return None
    if not (dest / "ae.pt").is_file() and ae_ended(run):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "config.yml").write_text((run / "config.yml").read_text())
        lines = [x for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        (dest / "metrics_ae.jsonl").write_text("".join(x + "\n" for x in lines if json.loads(x).get("phase") == "ae"))
        _half_copy(run / "ae.pt", dest / "ae.pt")  # written atomically, last: its presence marks the milestone
    kept = dest / KEPT / "kept.json"
    if (dest / "ae.pt").is_file() and kept.is_file() and json.loads(kept.read_text()).get("phase") == "ae":
        # a copy paused in the AE phase, which has ended since: a new machine starts from the milestone
        shutil.rmtree(dest / KEPT)
    return dest if (dest / "ae.pt").is_file() else None


DECISION = "publish_decision_ema.json"  # publish_if_better's record (--which ema)


def join_ae_log(model: str) -> bool:
    """A run that started its NAE phase from a kept AE (a new machine: ``train.init_ae`` naming
    the milestone) logged no AE phase of its own; before it is compared and published, the kept
    AE phase's log (``MILESTONES/RUN/metrics_ae.jsonl``) is put in front of its ``metrics.jsonl``
    (written atomically), so the run, and the model published from it, say how their AE was
    trained (epochs, early stopping, hardware).  True when it joined them."""
    from nae.diagnostics import ae_phase

    run, kept = RUNS / MODELS[model][2], MILESTONES / MODELS[model][2] / "metrics_ae.jsonl"
    if ae_phase(run)["val"] or not kept.is_file():
        return False
    log = run / "metrics.jsonl"
    tmp = log.with_name(log.name + ".joined.tmp")
    tmp.write_text(kept.read_text() + log.read_text())
    os.replace(tmp, log)
    return True


def describe(model: str) -> dict:
    """The manifest texts of ``model``'s finished run: ``description``, ``hardware``, ``note``."""
    from nae.diagnostics import ae_phase, read_metrics, run_hardware

    cfg, extra, run_name, name = MODELS[model]
    run = RUNS / run_name
    what = ("NAE on MNIST; outliers FashionMNIST, Omniglot, Constant, ConstantGray, Noise" if cfg == "mnist_ood" else
            f"NAE on MNIST without digit {name[-1]}; outlier: the held-out {name[-1]}s")
    precision = "/".join(sorted({e["precision"] for e in read_metrics(run) if e.get("event") == "start"}))
    return {"description": f"{what} (a new run on one CPU core: AE to the original's early stopping, "
                           f"{ae_phase(run)['epochs']} epochs; NAE {NAE_ITERS:,} iterations at lr 1e-5 with 32 "
                           f"negatives per step, moving average of the weights; {precision})",
            "hardware": run_hardware(run, threads=1),  # the campaign runs one thread per job
            "note": f"issue 12 campaign (scripts/mnist_campaign.py): AE to early stopping, then {NAE_ITERS:,} NAE "
                    f"iterations; levers: 32 negatives, EMA 0.99 (the published model is the average)"
                    + ("; the AE phase ran in an earlier session, the NAE phase started from its kept weights "
                       "(train.init_ae: the milestone, now this model's ae.pt), so wall_time_s is the NAE phase's"
                       if _from_kept_ae(run) else "")
                    + "".join(f"; continued on another machine from its kept copy at {r['phase'].upper()} step "
                              f"{r['step']:,} (scripts/keep_run.py: float16 weights, a fresh optimiser)"
                              for r in read_metrics(run) if r.get("event") == "optimizer_reset")}


def _from_kept_ae(run: Path) -> bool:
    """True when the run's NAE phase started from an AE kept in ``MILESTONES`` (a new machine)."""
    from nae.config import load_saved_config

    init = load_saved_config(run / "config.yml").train.init_ae
    return bool(init) and Path(str(init)).resolve().is_relative_to(MILESTONES.resolve())


def compare(model: str) -> Path:
    """Compares ``model``'s finished run with the published model on the validation split
    (``scripts/publish_if_better.py RUN NAME --which ema``; mnist_ood with ``--ties``, its
    watched sets saturate at 1), which publishes it when better, then keeps the record in
    ``MILESTONES/RUN/``: the decision, and, when the run was not published, its log and its
    candidate's weights (``ema.pt``, float16) beside the kept AE; when it was, the published model holds the AE, config and log, and the kept
    AE goes.  Returns the record's path."""
    from publish_if_better import main as publish

    cfg, _, run_name, name = MODELS[model]
    run = RUNS / run_name
    join_ae_log(model)
    texts = describe(model)
    publish([str(run), name, "--which", "ema", *(["--ties"] if cfg == "mnist_ood" else []),
             *(x for k, v in texts.items() for x in (f"--{k}", v))])
    return keep_record(model)


def keep_record(model: str) -> Path:
    """The second half of :func:`compare`: keeps the decision that ``publish_if_better`` wrote
    in the run directory (see there)."""
    run, dest = RUNS / MODELS[model][2], MILESTONES / MODELS[model][2]
    record = json.loads((run / DECISION).read_text())
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / KEPT, ignore_errors=True)  # the finished run is the record now
    if record["published"]:
        for f in ("ae.pt", "config.yml", "metrics_ae.jsonl"):
            (dest / f).unlink(missing_ok=True)
    else:
        from nae.pretrained import _half_copy

        save_milestone(model)
        (dest / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text())
        if (run / "ema.pt").is_file():  # the candidate's weights (float16): a later decision can still use them
            _half_copy(run / "ema.pt", dest / "ema.pt")
    (dest / DECISION).write_text(json.dumps(record, indent=1) + "\n")
    return dest / DECISION


def state(run: Path) -> str:
    kept = MILESTONES / run.name / DECISION
    if kept.is_file():
        rec = json.loads(kept.read_text())
        return (f"compared: published as {rec['name']}" if rec["published"] else
                f"compared: not better than the published {rec['name']}, kept in {kept.parent}")
    if (run / "model.pt").is_file():
        return "finished"
    if (run / "checkpoint.pt").is_file():
        return "has a checkpoint (running, or resumed next)" + ("; AE phase ended" if ae_ended(run) else "")
    if (MILESTONES / run.name / KEPT / "checkpoint.pt").is_file():
        step = json.loads((MILESTONES / run.name / KEPT / "kept.json").read_text()).get("step")
        return f"not here; a copy paused at step {step} is kept (it continues from there)"
    if (MILESTONES / run.name / "ae.pt").is_file():
        return "not started here; its AE is kept (the NAE phase starts from it)"
    return "not started"


def deadline(hhmm: str, now: datetime | None = None) -> datetime:
    """HH:MM (UTC, as ``date -u`` prints it) nearest to ``now``: within the last 12 hours it has
    passed (a lane started late stops at once), else it is the next one."""
    now = now or datetime.now(timezone.utc)
    h, m = map(int, hhmm.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if t < now - timedelta(hours=12):
        t += timedelta(days=1)
    elif t > now + timedelta(hours=12):
        t -= timedelta(days=1)
    return t


def keep_paused(model: str) -> Path | None:
    """Keeps the portable copy of ``model``'s paused run (``nae.portable``: float16 weights and
    moving average, buffer, step, log; no optimiser state) in ``MILESTONES/RUN/kept/``, so that
    a new machine continues it (:func:`command` restores it) instead of starting it again.
    The folder, or None when the run holds no checkpoint (not started, or finished)."""
    from nae import portable

    run = RUNS / MODELS[model][2]
    if not (run / "checkpoint.pt").is_file() or (run / "model.pt").is_file():
        return None
    return portable.keep(run, MILESTONES / run.name / KEPT)


def restore_kept(model: str) -> bool:
    """Makes ``model``'s run directory from its kept copy, on a machine without one (the AE it
    started from is the kept milestone ``ae.pt``); True when it did."""
    from nae import portable

    run, kept = RUNS / MODELS[model][2], MILESTONES / MODELS[model][2] / KEPT
    if (run / "checkpoint.pt").is_file() or not (kept / "checkpoint.pt").is_file():
        return False
    ae = MILESTONES / run.name / "ae.pt"
    portable.restore(kept, run, ae=str(ae) if ae.is_file() else None)
    return True


def command(model: str, minutes: float) -> list:
    """The ``nae train`` command of ``model``: a new run, or the resume of a stopped one (made
    first from its kept copy, :func:`restore_kept`, on a machine without it)."""
    cfg, extra, run_name, _ = MODELS[model]
    run = RUNS / run_name
    restore_kept(model)
    cmd = [sys.executable, "-m", "nae", "train", "--quiet", "--max-minutes", f"{minutes:.1f}"]
    if (run / "checkpoint.pt").is_file():
        return cmd + ["--resume", "--out", str(run), f"train.nae.max_iters={NAE_ITERS}"]
    kept = MILESTONES / run_name / "ae.pt"
    start = [f"train.init_ae={kept}"] if kept.is_file() else []  # the AE kept from a lost machine
    return cmd + [cfg, "--out", str(run), "--precision", "auto", *extra, *COMMON, *start]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help=f"in order: {', '.join(MODELS)}")
    p.add_argument("--until", help="HH:MM (UTC): stop the running job at a checkpoint then")
    p.add_argument("--list", action="store_true")
    p.add_argument("--milestones", action="store_true", help="keep the AE of every run whose AE phase has ended")
    p.add_argument("--keep", action="store_true",
                   help="keep a portable copy of every paused run (MILESTONES/RUN/kept/; a lane stopped at its "
                        "deadline does it itself)")
    p.add_argument("--compare", action="store_true",
                   help="compare the given finished runs with the published models (publishing the better) "
                        "and keep the records")
    a = p.parse_args(argv)
    for flag, keep, what in ((a.milestones, save_milestone, "AE"), (a.keep, keep_paused, "paused run")):
        if flag:  # --milestones, --keep: for every model, then nothing else
            for k in MODELS:
                dest = keep(k)
                if dest:
                    print(f"{k}: {what} kept in {dest}")
            return 0
    if a.list:
        print(f"rule: AE to the original's early stopping, then NAE with {' '.join(COMMON)}")
        for k, (cfg, extra, run, name) in MODELS.items():
            print(f"{k:9s} {cfg} {' '.join(extra):22s} {RUNS / run}: {state(RUNS / run)} -> {name}")
        return 0
    unknown = [m for m in a.models if m not in MODELS]
    if a.compare and a.models and not unknown:
        for m in a.models:
            if state(RUNS / MODELS[m][2]) != "finished":
                p.error(f"{m}: {state(RUNS / MODELS[m][2])}: only a finished run that has not been compared is compared")
        for m in a.models:
            print(f"{m}: record in {compare(m)}", flush=True)
        return 0
    if unknown or not a.models or not a.until:
        p.error(f"give --until HH:MM and models among {', '.join(MODELS)}" + (f" (unknown: {unknown})" if unknown else ""))
    end = deadline(a.until)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for m in a.models:
        run, name = RUNS / MODELS[m][2], MODELS[m][3]
        minutes = (end - datetime.now(timezone.utc)).total_seconds() / 60
        if state(run) == "finished":
            print(f"{m}: {run} finished; compare it: scripts/mnist_campaign.py --compare {m}", flush=True)
            continue
        if state(run).startswith("compared"):
            print(f"{m}: {state(run)}", flush=True)
            continue
        if minutes < 2:
            print(f"{m}: deadline reached, not started", flush=True)
            break
        cmd = command(m, minutes)
        print(time.strftime("%H:%M:%S"), " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=REPO, env=env)
        save_milestone(m)
        if rc != 0:
            keep_paused(m)
            print(f"{m}: training exited with {rc}; the lane stops", flush=True)
            return rc
        if state(run) != "finished":
            dest = keep_paused(m)  # stopped at the deadline: a new machine continues from this copy
            print(f"{m}: stopped at the deadline; paused run kept in {dest}", flush=True)
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
