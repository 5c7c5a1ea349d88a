#!/usr/bin/env python3
"""Spend a lent GPU's minutes on the trainings our CPUs cannot finish: one prepared plan.

A lent machine (the ``device`` tool) gets a copy of the working tree, at most 64 MiB a call,
and gives back at most 8 files of 16 MiB (64 MiB) a call; it stays warm 30 s between calls,
and a session has 15 minutes of it, start and transfers included.  Our data and weights are
bigger than one call, so this script cuts them into pieces, sends them over several calls,
starts each training as soon as its files are complete, and brings the results back in
pieces.  Every file is checked by sha256 after it has been put together again.

Here, in order::

    python scripts/device_window.py prepare [--jobs bench,holdout8,celeba64,cifar10]
        # .dev/up1 ... .dev/upN: the pieces of each call, and the device calls to make
    python scripts/device_window.py untrack      # big tracked folders out of the travelling tree
    ... the device calls that `prepare` printed: unpack 1..N, then collect 1..M ...
    python scripts/device_window.py retrack      # undo untrack
    python scripts/device_window.py join /work/.device/...   # the fetched folders -> ~/nae-runs/device-DATE/

There (what the printed device calls run)::

    python3 scripts/device_window.py unpack K     # pieces of call K -> /tmp/dev; starts the jobs whose files are complete
    python3 scripts/device_window.py collect K    # waits for the jobs, then piece set K of the results -> $OUT

Timeline of a 15-minute window (the machine goes back 30 s after a call ends, losing
/tmp/dev: make the calls back to back): start ~1.5 min; calls 1-4 up (58 MiB each; the first
training starts in call 1 and sets the common deadline, ``--train-minutes``, default 7); collect 1
waits for the deadline, the trainings' finishing and the benchmark (~8.5 min after call 1);
collects 2-3 bring the rest back (CelebA weights are 62 MiB each: one call per file).  About
12.5 minutes in all.  Fewer jobs (``--jobs``) mean fewer calls.

The jobs (``JOBS``) and why each is set up as it is are written next to them.  Each training
runs through ``scripts/timeboxed_train.py`` (AE box, NAE until the common deadline, then the run
is finished and its weights copied in float16); all share one GPU through CUDA MPS.  What comes
back are run directories: publish them here (name the candidate weights before looking)::

    python scripts/publish_if_better.py RUNS/holdout8 mnist_holdout_8 --which ema --hardware "NVIDIA H200 ..." --description "..."
    python scripts/publish_if_better.py RUNS/cifar10 cifar10_ood_gpu --which ema --hardware "NVIDIA H200 ..." --description "..."
    python scripts/make_pretrained.py celeba64_ood_cpu --publish RUNS/celeba64 --hardware "NVIDIA H200 ..." --description "..."

then re-execute notebooks 02-04 at the full budget.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from nae.pretrained import sha256  # noqa: E402
PACK = REPO / ".dev"                                   # here: the pieces to send (ignored by git)
DEV = Path(os.environ.get("NAE_DEVICE_DIR", "/tmp/dev"))  # there: data, runs, results
MiB = 2 ** 20
PIECE = 15 * MiB          # a returned file is at most 16 MiB
UP_PART = 58 * MiB        # what one call carries: 64 MiB less the tree after `untrack` (~1.5 MiB) and plan.json
BACK_FILES, BACK_PART = 7, 60 * MiB   # per call back: 7 pieces + back.json (8 files), under 64 MiB
UNTRACK = ("pretrained", "book", "notebooks")         # tracked folders the device does not need (~160 MB)
MARK = "# device_window untrack"


def _data_root() -> Path:
    return Path(os.environ.get("NAE_DATA") or REPO / "datasets")


def _gzip(src: Path):
    def make(dst: Path):
        with open(src, "rb") as fi, gzip.open(dst, "wb", compresslevel=6) as fo:
            shutil.copyfileobj(fi, fo)
    return make


def _celeba_files(splits=("0", "1")):
    """The CelebA images of the training and validation splits, and a partition file listing only
    them (the loader reads a split's images only; the test split is scored here afterwards)."""
    root = _data_root() / "celeba"
    part = next((p for p in (root / "list_eval_partition_subset.txt", root / "list_eval_partition.txt")
                 if p.is_file()), None)
    if part is None:
        raise SystemExit(f"no CelebA partition file in {root} (NAE_DATA={_data_root()})")
    keep = [ln for ln in part.read_text().splitlines() if ln.split() and ln.split()[1] in splits]
    out = [(root / "img_align_celeba" / ln.split()[0], f"data/celeba/img_align_celeba/{ln.split()[0]}") for ln in keep]
    return out + [(lambda dst: dst.write_text("\n".join(keep) + "\n"), "data/celeba/list_eval_partition.txt")]


def _mnist_files():
    raw = _data_root() / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    return [(_gzip(raw / n), f"data/MNIST/raw/{n}.gz") for n in names]  # gzipped: 55 MB -> 11 MB


def _cifar_train(dst: Path):
    """cifar10.npz with the training images only (the test images are scored here afterwards)."""
    import numpy as np

    with np.load(_data_root() / "cifar10.npz") as z, open(dst, "wb") as f:  # a file object: no ".npz" added
        np.savez_compressed(f, x_train=z["x_train"], y_train=z["y_train"])


def _published(name, files=("ae.pt", "model.pt", "config.yml")):
    return [(REPO / "pretrained" / name / f, f"init/{name}/{f}") for f in files]


#: what runs there.  ``files``: (source here, destination under /tmp/dev); ``args``: for
#: timeboxed_train.py (``{DEV}`` is the folder there); ``skip_back``: packaged files not brought back;
#: ``ae_from``: the published model whose ae.pt ``join`` puts back (a continuation's AE is the published one).
JOBS = {
    # issue 11: the bf16 figure on a GPU (bf16 >= 3x the eager original).  Runs first, alone.
    "bench": dict(files=_mnist_files, command=[
        "benchmarks/bench_step.py", "--config", "mnist_ood", "--device", "cuda", "--precision", "auto",
        "--iters", "5", "--warmup", "2", "--only", "nae,energy", "--json", "{DEV}/pkg/bench/bench_step_cuda.json"]),
    # issue 12: digit 8, the one hold-out digit below its AE.  From the published weights with the
    # original's 128 negatives and lr 1e-5 (on CPU it ran with 32), the moving average on (named the
    # candidate in advance, as on CPU).  The AE is the published one (not brought back).
    "holdout8": dict(files=lambda: _mnist_files() + _published("mnist_holdout_8"), name="holdout8",
                     config="mnist_holdout", skip_back=("ae.pt",), ae_from="mnist_holdout_8", args=[
                         "data.holdout=[8]", "train.init_ae={DEV}/init/mnist_holdout_8/ae.pt",
                         "train.init_nae={DEV}/init/mnist_holdout_8/model.pt", "sampler.n_negatives=128",
                         "data.n_val=1000", "train.nae.val_every=50", "train.nae.max_iters=100000",
                         "train.nae.ema=0.99"]),
    # issue 13: CelebA-64 from scratch with the chapter's recipe celeba64_ood_cpu (AE 30 epochs =
    # 1,200 steps on the subset, NAE 600 iterations at lr 1e-4 with 32 negatives): the GPU only runs
    # it faster.  The AE box is generous; the NAE stops at 600 or at the deadline.
    "celeba64": dict(files=_celeba_files, name="celeba64",
                     config="celeba64_ood", ae_min=3.0, args=[
                         "sampler.n_negatives=32", "train.nae.lr=1e-4", "train.nae.val_every=50",
                         "data.n_val=1000", "train.nae.max_iters=600"]),
    # issue 13: CIFAR-10, the published short GPU model continued (its NAE had 84 iterations of the
    # original's 3,520) at the original's lr 1e-5 and 128 negatives, moving average on.
    "cifar10": dict(files=lambda: [(_cifar_train, "data/cifar10.npz")] + _published("cifar10_ood_gpu"),
                    name="cifar10", config="cifar10_ood", skip_back=("ae.pt",), ae_from="cifar10_ood_gpu", args=[
                        "data.ood_val=ConstantGray", "data.n_val=1000", "train.nae.val_every=50",
                        "train.init_ae={DEV}/init/cifar10_ood_gpu/ae.pt",
                        "train.init_nae={DEV}/init/cifar10_ood_gpu/model.pt",
                        "train.nae.max_iters=100000", "train.nae.ema=0.99"]),
}


def safe_name(dest: str) -> str:
    """A flat file name for a path (the device returns names of letters, digits, '.', '_', '-')."""
    return dest.replace("/", "__").replace("[", "").replace("]", "")


def cut(files: list[tuple[str, int]], part_bytes: int, piece_bytes: int, part_files: int = 10 ** 9) -> list[list[dict]]:
    """``files`` (name, size), in order, cut into parts of at most ``part_bytes`` and ``part_files``
    pieces each, a piece at most ``piece_bytes``: a file runs on into the next part where the current
    one is full, so every part but the last is full."""
    parts, cur, used = [], [], 0
    for name, size in files:
        offset, k, mine = 0, 0, []
        while offset < size or (size == 0 and not mine):
            if len(cur) >= part_files or (used >= part_bytes and cur):
                parts.append(cur)
                cur, used = [], 0
            n = min(size - offset, piece_bytes, part_bytes - used)
            p = {"file": name, "index": k, "offset": offset, "size": n, "name": f"{safe_name(name)}.{k:03d}"}
            cur.append(p)
            mine.append(p)
            used += n
            offset += n
            k += 1
        for p in mine:
            p["of"] = len(mine)
    if cur:
        parts.append(cur)
    return parts


def write_pieces(src: Path, pieces: list[dict], out_dir: Path) -> None:
    with open(src, "rb") as f:
        for p in pieces:
            f.seek(p["offset"])
            (out_dir / p["name"]).write_bytes(f.read(p["size"]))


def assemble(plan_files: dict, piece_dirs: list[Path], out_root: Path) -> tuple[list[str], list[str]]:
    """Puts together every file of ``plan_files`` (name -> {"sha256", "pieces": [...]}) whose pieces are
    all in ``piece_dirs``, under ``out_root/name``, checking its sha256.  Returns (done, incomplete)."""
    done, incomplete = [], []
    seen_file = out_root / VERIFIED
    seen = json.loads(seen_file.read_text()) if seen_file.is_file() else {}
    for name, info in plan_files.items():
        dst = out_root / name
        if dst.is_file() and _verified(dst, seen.get(name)) == info["sha256"]:
            seen[name] = [info["sha256"], _stamp(dst)]
            done.append(name)
            continue
        found = []
        for pname in info["pieces"]:
            hit = next((d / pname for d in piece_dirs if (d / pname).is_file()), None)
            found.append(hit)
        if any(h is None for h in found):
            incomplete.append(name)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        with open(tmp, "wb") as f:
            for h in found:
                f.write(h.read_bytes())
        got = sha256(tmp)
        if got != info["sha256"]:
            tmp.unlink()
            raise SystemExit(f"{name}: sha256 {got[:12]}... after putting its pieces together, the plan says "
                             f"{info['sha256'][:12]}...: a piece is corrupt; send it again")
        tmp.replace(dst)
        seen[name] = [got, _stamp(dst)]
        done.append(name)
    if seen:
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = seen_file.with_name(VERIFIED + ".part")
        tmp.write_text(json.dumps(seen))
        tmp.replace(seen_file)
    return done, incomplete


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


VERIFIED = ".verified.json"   # under out_root: {name: [sha256, "size mtime_ns"]} of the files put together


def _verified(path: Path, record: list | None) -> str:
    """The sha256 of ``path``: the one remembered in ``record`` when the file has not changed since it
    was checked (every ``unpack`` assembles again: thousands of images or a 500 MB checkpoint are not
    hashed anew each call), else computed."""
    if record and record[1] == _stamp(path):
        return record[0]
    return sha256(path)
    digest = sha256(path)
    _mark_verified(path, digest)
    return digest


# ----------------------------------------------------------------------------------------- here
def prepare(jobs: list[str], train_minutes: float, part_bytes: int) -> None:
    for j in jobs:
        if j not in JOBS:
            raise SystemExit(f"unknown job {j!r}; jobs: {', '.join(JOBS)}")
    if PACK.exists():
        shutil.rmtree(PACK)
    PACK.mkdir()
    stage = PACK / "stage"   # files made here (gzipped MNIST, the CelebA partition list)
    stage.mkdir()
    order, sources, needs = [], {}, {}
    for j in jobs:
        spec = JOBS[j]
        items = list(spec["files"]())
        needs[j] = sorted(dest for _, dest in items)
        for src, dest in items:
            if dest in sources:
                continue
            if callable(src):  # made here: gzipped MNIST, the CelebA partition list, CIFAR's training half
                made = stage / safe_name(dest)
                src(made)
                src = made
            src = Path(src)
            if not src.is_file():
                raise SystemExit(f"job {j}: {src} is missing (NAE_DATA={_data_root()}; pretrained/ must be there "
                                 f"when preparing: run `retrack` first)")
            sources[dest] = src
            order.append(dest)
    parts = cut([(d, sources[d].stat().st_size) for d in order], part_bytes, part_bytes)
    pieces = [p for part in parts for p in part]
    files = {d: {"sha256": sha256(sources[d]), "pieces": [p["name"] for p in pieces if p["file"] == d]}
             for d in order}
    plan = {"jobs": jobs, "train_minutes": train_minutes, "files": files, "parts": len(parts),
            "job_files": needs}
    for k, part in enumerate(parts, 1):
        d = PACK / f"up{k}"
        d.mkdir()
        for dest in {p["file"] for p in part}:
            write_pieces(sources[dest], [p for p in part if p["file"] == dest], d)
        (d / "plan.json").write_text(json.dumps(plan, indent=1))
    shutil.rmtree(stage)
    tree = tree_bytes()
    print(f"{len(parts)} calls up, {sum(p['size'] for p in pieces) / MiB:.1f} MiB of data and weights; "
          f"the travelling tree is {tree / MiB:.1f} MiB now" + ("" if tree < 64 * MiB - part_bytes else
                                                               " -- run `untrack` before the calls"))
    for k, part in enumerate(parts, 1):
        mib = sum(p["size"] for p in part) / MiB
        cmd = f"python3 scripts/device_window.py unpack {k}"
        print(f"call {k}: carry [\".dev/up{k}\"] ({mib:.1f} MiB), command: {cmd}")
    print("then, one call each (no carry), until every piece is back: "
          "python3 scripts/device_window.py collect K   (K = 1, 2, ...; the first says how many)")


def tree_bytes() -> int:
    """Bytes of what the device tool sends: tracked files plus untracked files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / p.decode()).stat().st_size for p in out if p and (REPO / p.decode()).is_file())


def _exclude_file() -> Path:
    git_dir = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
    p = (REPO / git_dir / "info" / "exclude")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def untrack() -> None:
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=REPO).returncode != 0:
        raise SystemExit("there are staged changes: commit them first (retrack resets the index of "
                         f"{', '.join(UNTRACK)})")
    ex = _exclude_file()
    text = ex.read_text() if ex.is_file() else ""
    if MARK not in text:
        ex.write_text(text + f"{MARK}\n" + "".join(f"/{d}/\n" for d in UNTRACK) + f"{MARK} end\n")
    subprocess.run(["git", "rm", "-r", "-q", "--cached", "--", *UNTRACK], cwd=REPO, check=True)
    print(f"untracked {', '.join(UNTRACK)} (the files stay); the travelling tree is {tree_bytes() / MiB:.1f} MiB; "
          f"`retrack` when the device calls are done")


def retrack() -> None:
    ex = _exclude_file()
    if ex.is_file() and MARK in ex.read_text():
        lines = ex.read_text().splitlines(keepends=True)
        a = next(i for i, ln in enumerate(lines) if ln.strip() == MARK)
        b = next(i for i, ln in enumerate(lines) if ln.strip() == f"{MARK} end")
        ex.write_text("".join(lines[:a] + lines[b + 1:]))
    subprocess.run(["git", "reset", "-q", "--", *UNTRACK], cwd=REPO, check=True)
    st = subprocess.run(["git", "status", "--short", "--", *UNTRACK], cwd=REPO, capture_output=True, text=True).stdout
    print("retracked" + (f"; changes in them:\n{st}" if st else "; nothing changed in them"))


def join(dirs: list[Path], out: Path) -> None:
    plans = [d / "back.json" for d in dirs if (d / "back.json").is_file()]
    if not plans:
        raise SystemExit(f"no back.json in {', '.join(map(str, dirs))}: give the folders the collect calls returned")
    plan = json.loads(plans[0].read_text())
    done, incomplete = assemble(plan["files"], dirs, out)
    print(f"{len(done)} files complete under {out}" + (f"; still missing pieces of: {', '.join(incomplete)} "
                                                        f"(fetch the other collect calls)" if incomplete else ""))
    for spec in JOBS.values():
        run = out / spec.get("name", "-")
        if spec.get("ae_from") and run.is_dir() and not (run / "ae.pt").exists():
            shutil.copy2(REPO / "pretrained" / spec["ae_from"] / "ae.pt", run / "ae.pt")
            print(f"  {run}/ae.pt: the AE it continued, from pretrained/{spec['ae_from']}")
    for j in plan.get("jobs", []):
        if (out / j).is_dir():
            print(f"  {out / j}: {', '.join(sorted(p.name for p in (out / j).iterdir()))}")


# ---------------------------------------------------------------------------------------- there
def _state() -> dict:
    p = DEV / "state.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _save_state(s: dict) -> None:
    (DEV / "state.json").write_text(json.dumps(s, indent=1))


def _start_mps(device: str) -> None:
    exe = shutil.which("nvidia-cuda-mps-control") or "/usr/local/nvidia/bin/nvidia-cuda-mps-control"
    if device == "cuda" and Path(exe).exists():
        subprocess.run(f"setsid {exe} -d", shell=True)
        print("CUDA MPS started (the trainings share the GPU)")


def _fill(args, dev=None):
    return [a.replace("{DEV}", str(dev or DEV)) for a in args]


def unpack(k: int, device: str, budget: str, precision: str, train_minutes=None) -> None:
    """Puts the pieces of call ``k`` in place and starts every training whose files are complete."""
    src = REPO / ".dev" / f"up{k}"
    if not (src / "plan.json").is_file():
        raise SystemExit(f"{src}/plan.json is missing: carry .dev/up{k} in this call")
    plan = json.loads((src / "plan.json").read_text())
    DEV.mkdir(parents=True, exist_ok=True)
    pieces = DEV / "pieces"
    pieces.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.name != "plan.json":
            shutil.copy2(f, pieces / f.name)
    done, incomplete = assemble(plan["files"], [pieces], DEV)
    for name in done:
        for pname in plan["files"][name]["pieces"]:
            (pieces / pname).unlink(missing_ok=True)
    st = _state()
    if "deadline" not in st:
        st["deadline"] = time.time() + 60 * (train_minutes or plan["train_minutes"])
        st["started"] = []
        st["device"] = device
        _start_mps(device)
    env = {**os.environ, "NAE_DATA": str(DEV / "data"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    (DEV / "logs").mkdir(exist_ok=True)
    for j in plan["jobs"]:
        spec = JOBS[j]
        if "command" in spec:  # a benchmark: runs alone, in the first collect call, once the trainings end
            if j not in st.setdefault("benches", []):
                st["benches"].append(j)
            continue
        if j in st["started"] or any(f in incomplete for f in plan["job_files"][j]):
            continue
        log = open(DEV / "logs" / f"{j}.log", "w")
        cmd = [sys.executable, str(REPO / "scripts" / "timeboxed_train.py"), spec["name"], spec["config"],
               "--out", str(DEV / "runs" / spec["name"]), "--pkg", str(DEV / "pkg"), "--deadline",
               str(st["deadline"]), "--device", device, "--budget", budget, "--precision", precision]
        if spec.get("ae_min"):
            cmd += ["--ae-min", str(spec["ae_min"])]
        cmd += _fill(spec["args"])
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"job {j}: started, {(st['deadline'] - time.time()) / 60:.1f} min to the deadline")
        st["started"].append(j)
        _save_state(st)
    _save_state(st)
    waiting = [j for j in plan["jobs"] if j not in st["started"] and j not in st.get("benches", [])]
    print(f"files complete: {len(done)}, incomplete: {len(incomplete)}; jobs started: {st['started']}; "
          f"benchmarks after the trainings: {st.get('benches', [])}"
          + (f"; waiting for their files: {waiting}" if waiting else ""))


def collect(k: int, wait_s: float, force: bool = False, again: bool = False) -> None:
    """Waits (at most ``wait_s``) for every training to be packaged, runs the benchmarks once, fixes the
    list of pieces to bring back (``/tmp/dev/back.json``, the same for every later call) and copies
    part ``k`` of it to ``$OUT``.  While a training is still running it packs nothing (exit 3): call
    again, or ``--force`` to bring back what is there (the unfinished jobs are then left out, for
    good: ``--again`` makes a new list, whose parts must all be fetched again)."""
    st = _state()
    if not st:
        raise SystemExit(f"no {DEV}/state.json: nothing was unpacked on this machine (a fresh machine?)")
    back = DEV / "back.json"
    if again:
        back.unlink(missing_ok=True)
    if not back.is_file():
        t_end = time.time() + wait_s
        while True:
            pending = [j for j in st["started"] if not (DEV / "pkg" / JOBS[j]["name"] / "PACKAGED").is_file()]
            if not pending or time.time() > t_end:
                break
            time.sleep(5)
        for j in st["started"]:
            log = DEV / "logs" / f"{j}.log"
            if log.is_file():
                print(f"--- {j}: " + "\n".join(log.read_text().splitlines()[-4:]))
        if pending and not force:
            print(f"still running: {pending} ({(st['deadline'] - time.time()) / 60:.1f} min to the deadline); "
                  f"nothing packed: call collect again (or --force)")
            sys.exit(3)
        _run_benches(st)
        _freeze_back(st, [j for j in st["started"] if j not in pending])
    plan = json.loads(back.read_text())
    parts = plan.pop("cut")
    if not 1 <= k <= len(parts):
        raise SystemExit(f"there are {len(parts)} parts to collect, not {k}")
    out = Path(os.environ.get("OUT", DEV / "out"))
    out.mkdir(parents=True, exist_ok=True)
    for p in parts[k - 1]:
        write_pieces(DEV / "pkg" / p["file"], [p], out)
    (out / "back.json").write_text(json.dumps(plan, indent=1))
    print(f"part {k} of {len(parts)}: {sum(p['size'] for p in parts[k - 1]) / MiB:.1f} MiB, "
          f"{sorted({p['file'] for p in parts[k - 1]})}")


def _run_benches(st: dict, timeout: float = 90.0) -> None:
    env = {**os.environ, "NAE_DATA": str(DEV / "data"), "PYTHONUNBUFFERED": "1"}
    for j in [b for b in st.get("benches", []) if b not in st.get("benched", [])]:
        (DEV / "pkg" / "bench").mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, *_fill(JOBS[j]["command"])]
        cmd[cmd.index("--device") + 1] = st.get("device", "cuda")
        with open(DEV / "logs" / f"{j}.log", "w") as log:
            try:
                r = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
                print(f"job {j}: exit {r.returncode}")
            except subprocess.TimeoutExpired:
                print(f"job {j}: stopped after {timeout:.0f} s")
        st.setdefault("benched", []).append(j)
        _save_state(st)


def _freeze_back(st: dict, finished: list) -> None:
    logs = DEV / "pkg" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for f in (DEV / "logs").glob("*.log"):
        shutil.copy2(f, logs / f.name)
    names = {JOBS[j]["name"] for j in finished} | {"bench", "logs"}
    skip = {(JOBS[j]["name"], s) for j in finished for s in JOBS[j].get("skip_back", ())}
    files = sorted(p for p in (DEV / "pkg").rglob("*") if p.is_file() and p.name != "PACKAGED"
                   and p.relative_to(DEV / "pkg").parts[0] in names and (p.parent.name, p.name) not in skip)
    rel = [str(p.relative_to(DEV / "pkg")) for p in files]
    sized = sorted(((r, p.stat().st_size) for r, p in zip(rel, files)), key=lambda rs: (rs[1] >= MiB, rs[0]))
    parts = cut(sized, BACK_PART, PIECE, BACK_FILES)  # the small files (logs, configs) come back first
    pieces = [p for part in parts for p in part]
    plan = {"jobs": sorted(names), "parts": len(parts), "cut": parts,
            "files": {r: {"sha256": sha256(DEV / "pkg" / r), "pieces": [p["name"] for p in pieces if p["file"] == r]}
                      for r in rel}}
    (DEV / "back.json").write_text(json.dumps(plan, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare", help="here: cut data and weights into the pieces of each call (.dev/upK)")
    a.add_argument("--jobs", default="bench,holdout8,celeba64,cifar10",
                   help=f"comma list, in the order they should start (of: {', '.join(JOBS)})")
    a.add_argument("--train-minutes", type=float, default=7.0,
                   help="the common deadline, counted from the first unpack (default 7)")
    a.add_argument("--part-mib", type=float, default=UP_PART / MiB, help="MiB of pieces per call up")
    sub.add_parser("untrack", help=f"here: git rm --cached {' '.join(UNTRACK)} for the calls (files kept)")
    sub.add_parser("retrack", help="here: undo untrack")
    sub.add_parser("size", help="here: MiB of the tree the device tool would send")
    a = sub.add_parser("join", help="here: put the fetched pieces together into run directories")
    a.add_argument("dirs", nargs="+", type=Path)
    a.add_argument("--out", type=Path, default=Path.home() / "nae-runs" / f"device-{time.strftime('%Y%m%d')}")
    a = sub.add_parser("unpack", help="there: the pieces of call K into /tmp/dev; start the jobs that can")
    a.add_argument("k", type=int)
    a.add_argument("--device", default="cuda")
    a.add_argument("--budget", default="full")
    a.add_argument("--precision", default="auto", help="auto: bf16 on a bf16 GPU (issue 11), fp32 elsewhere")
    a.add_argument("--train-minutes", type=float, default=None, help="override the plan's, at the first unpack")
    a = sub.add_parser("collect", help="there: wait for the jobs, then result part K into $OUT")
    a.add_argument("k", type=int)
    a.add_argument("--wait", type=float, default=450.0,
                   help="seconds to wait for the trainings at most (default 450: with the benchmark, under a call's 600)")
    a.add_argument("--force", action="store_true", help="bring back what is there though a training still runs")
    a.add_argument("--again", action="store_true", help="a new list of pieces (after --force): fetch every part again")
    a = p.parse_args(argv)
    if a.cmd == "prepare":
        prepare([j for j in a.jobs.split(",") if j], a.train_minutes, int(a.part_mib * MiB))
    elif a.cmd == "untrack":
        untrack()
    elif a.cmd == "retrack":
        retrack()
    elif a.cmd == "size":
        print(f"{tree_bytes() / MiB:.1f} MiB")
    elif a.cmd == "join":
        join(a.dirs, a.out)
    elif a.cmd == "unpack":
        unpack(a.k, a.device, a.budget, a.precision, a.train_minutes)
    elif a.cmd == "collect":
        collect(a.k, a.wait, a.force, a.again)


if __name__ == "__main__":
    main()
