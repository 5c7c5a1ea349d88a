"""Published pretrained models: ``pretrained/NAME/`` run directories with a manifest.

``pretrained/manifest.json`` maps each name to its files and their sha256, the config
and budget it was trained with, the hardware, the wall time and the metrics it
reached.  :func:`load_pretrained` checks every hash before loading, so a corrupt or
changed file is an error, not a silently different model.  Files too large for git
can be left out and fetched from the ``url`` given in the manifest when online.

:func:`publish` turns a finished run directory into such an entry.  The weights are
stored in half precision (``float16``) to keep the files small; the manifest's metrics
are computed from the stored (half-precision) weights.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .errors import CheckpointError

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = "manifest.json"
RUN_FILES = ("config.yml", "model.pt", "ae.pt", "ema.pt", "metrics.jsonl")
#: the logs of the runs a continued model went through before its own (``metrics.jsonl``): every
#: record of an earlier log, oldest first, with ``"segment": k`` (0 = the first run) added
HISTORY = "history.jsonl"


def sha256(path) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(root=None) -> dict:
    """The manifest of ``root`` (default ``pretrained/``); ``{}`` when there is none.  A file that
    is not valid JSON, or whose entries lack their ``files``, is a CheckpointError."""
    root = Path(root or PRETRAINED_DIR)
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); restore it, e.g. with git checkout") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: expected an object mapping model names to entries")
    for name, entry in manifest.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            raise CheckpointError(f"{path}: entry {name!r} has no 'files' mapping (file name -> sha256)")
    return manifest


def verify_files(name: str, run_dir: Path, files: dict, required: bool = True) -> None:
    """Checks the sha256 of each file of a manifest entry in ``run_dir`` (``required=False``:
    files that are absent are skipped)."""
    for fname, digest in files.items():
        path = run_dir / fname
        if not path.is_file():
            if required:
                raise CheckpointError(f"pretrained model {name!r}: {path} is missing")
            continue
        got = sha256(path)
        if got != digest:
            raise CheckpointError(f"pretrained model {name!r}: {path} has sha256 {got[:12]}..., the manifest "
                                  f"says {digest[:12]}...; the file is corrupt or was changed")


#: the files that identify a copy of a published model: they match the manifest byte for
#: byte (a retrained run with the same config.yml has its own metrics.jsonl)
SIGNATURE_FILES = ("config.yml", "metrics.jsonl")


def published_entry(run_dir) -> tuple:
    """``(name, entry)`` when ``run_dir`` holds a published model or a copy of one: its config.yml
    and metrics.jsonl (when it has one) have the sha256 listed for them in a manifest entry
    (in ``pretrained/`` or next to ``run_dir``); else ``(None, None)``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yml").is_file():
        return None, None
    digests = {}

    def same(entry, fname):
        if not (run_dir / fname).is_file():
            return fname != "config.yml"
        if fname not in digests:
            digests[fname] = sha256(run_dir / fname)
        return entry["files"].get(fname) == digests[fname]

    here = run_dir.resolve().parent
    for root in dict.fromkeys([here, PRETRAINED_DIR.resolve()]):
        try:
            manifest = read_manifest(root)
        except CheckpointError:
            if root == here:  # the run's own manifest is broken: say so
                raise
            continue  # another folder's broken manifest says nothing about this run
        for name, entry in manifest.items():
            if "config.yml" in entry["files"] and all(same(entry, f) for f in SIGNATURE_FILES):
                return name, entry
    return None, None


#: written by :func:`publish` into the run directory it published from: that directory is the
#: source (full-precision weights), not a copy, so its weights differ from the fp16 copies
SOURCE_MARKER = "published_as.json"


def verify_published(run_dir) -> None:
    """For a published model or a copy of one (see :func:`published_entry`): the sha256 of every
    file it has; a run directory that is not a published model passes unchecked, and so does
    the run a model was published from (its :data:`SOURCE_MARKER` names the model)."""
    name, entry = published_entry(run_dir)
    if name is not None and _is_source_of(Path(run_dir), name):
        return
    if name is not None:
        verify_files(name, Path(run_dir), entry["files"], required=False)


def write_manifest(manifest: dict, root=None) -> None:
    """Writes the manifest atomically."""
    root = Path(root or PRETRAINED_DIR)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)


def list_pretrained(root=None) -> list[str]:
    """The names of the published models."""
    return sorted(read_manifest(root))


def pretrained_path(name: str, root=None, download: bool = True) -> Path:
    """The verified run directory of a pretrained model (downloading missing files from
    the manifest's ``url`` when ``download`` and online)."""
    root = Path(root or PRETRAINED_DIR)
    manifest = read_manifest(root)
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none yet"
        raise CheckpointError(f"no pretrained model named {name!r}; available: {known} "
                              f"(see {root / MANIFEST}, or reproduce them with `make pretrained`)")
    entry = manifest[name]
    run_dir = root / entry.get("dir", name)
    for fname in entry["files"]:
        path = run_dir / fname
        if not path.is_file():
            url = entry.get("url")
            if url and download:
                run_dir.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(f"{url.rstrip('/')}/{fname}", str(path), progress=True)
            else:
                raise CheckpointError(
                    f"pretrained model {name!r}: {path} is missing"
                    + (f"; download it from {url}" if url else "; reproduce it with `make pretrained`"))
    verify_files(name, run_dir, entry["files"])
    return run_dir


def load_pretrained(name: str, which: str = "final", device="cpu", root=None):
    """Loads a pretrained model by name after checking its files' sha256 (see module doc).

    A milestone (manifest ``"stage": "ae"``: only the AE phase is published, the NAE phase is
    still training) has no final model: ``which="final"`` then says so; load ``which="ae"``."""
    from .run import load_run

    path = pretrained_path(name, root)
    entry = read_manifest(root)[name]
    if which in ("final", "ema") and entry.get("stage", "final") == "ae":
        raise CheckpointError(f"pretrained model {name!r} is a milestone: only its AE phase is published "
                              f"({entry.get('date', 'date unknown')}), its NAE phase has not been trained yet; "
                              f"load the AE with load_pretrained({name!r}, which='ae'), or continue the NAE "
                              f"phase with `python -m nae train ... train.init_ae={name}`")
    model = load_run(path, which=which, device=device, verify=False)  # checked just now
    model.pretrained_name = name
    model.manifest = entry
    return model


def measured_on(metrics: dict, key: str, names, n) -> bool:
    """Do a manifest entry's ``metrics`` hold ``key`` (``auroc``, ``ae_auroc``) for every set in
    ``names``, measured on ``n`` test images per set (entries from before ``eval_n`` was recorded:
    their ``n_in``)?  Then they stand in for scoring the published files again."""
    m = metrics or {}
    if not m.get(key) or n is None or m.get("eval_n", m.get("n_in")) != n:
        return False
    return set(names or ()) <= set(m[key])


def _is_source_of(run_dir: Path, name: str) -> bool:
    try:
        return json.loads((run_dir / SOURCE_MARKER).read_text()).get("name") == name
    except (OSError, ValueError, AttributeError):
        return False


def _names(init, dst: Path, name: str, fname: str) -> bool:
    """Does the ``train.init_*`` value ``init`` name the model published as ``name`` in ``dst``?"""
    return bool(init) and (init == name or Path(str(init)).resolve() in (dst.resolve(), (dst / fname).resolve()))


def _continues(run_dir: Path, dst: Path, name: str) -> bool:
    """Did the run start from the weights published as ``name``: its NAE (``train.init_nae``), or,
    where only the AE is published there (a milestone, ``stage: ae``), that AE (``train.init_ae``),
    whose phase's log then stays with the model?"""
    from yaml import YAMLError

    from .config import load_saved_config
    from .errors import NAEError

    try:
        train = load_saved_config(run_dir / "config.yml").train
    except (OSError, ValueError, YAMLError, NAEError):  # no readable config: not a continuation
        return False
    if train.init_nae:
        return _names(train.init_nae, dst, name, "model.pt")
    return _names(train.init_ae, dst, name, "ae.pt") and not (dst / "model.pt").is_file()


def _extends(run_dir: Path, dst: Path) -> bool:
    """Is the run the one published in ``dst``, trained further since (``--resume``): does its
    log begin with the published log, and go on?"""
    old_log, new_log = dst / "metrics.jsonl", run_dir / "metrics.jsonl"
    if not (old_log.is_file() and new_log.is_file()):
        return False
    old, new = old_log.read_bytes(), new_log.read_bytes()
    return len(new) > len(old) and new.startswith(old)


def extends_published(run_dir, name: str, root=None) -> bool:
    """True when ``run_dir`` is the run published as ``name``, resumed and trained further: its
    own log then counts every iteration of the published model, while a run that continued the
    published weights (``train.init_nae``) counts only its own."""
    return _extends(Path(run_dir), Path(root or PRETRAINED_DIR) / name)


def continues_published(run_dir, name: str, root=None) -> bool:
    """True when ``run_dir`` started from the weights published as ``name`` (``train.init_nae``
    naming them, or ``train.init_ae`` where only that AE is published): then the published
    model's NAE iterations come before the run's own.  A run trained from scratch (its own AE)
    continues nothing, even when it is published under the same name."""
    return _continues(Path(run_dir), Path(root or PRETRAINED_DIR) / name, name)


def _history(run_dir: Path, dst: Path, name: str) -> str:
    """The text of :data:`HISTORY` for publishing ``run_dir`` over ``dst``: ``dst``'s history when the
    run is the one published there already (publishing again, or the run resumed and trained
    further), that history plus ``dst``'s log as
    one more segment when the run continued the published model (or started its NAE phase from the
    AE published there alone), else nothing (a new model)."""
    old_log, old_hist = dst / "metrics.jsonl", dst / HISTORY
    hist = old_hist.read_text() if old_hist.is_file() else ""
    if not old_log.is_file():
        return hist if _continues(run_dir, dst, name) else ""
    new_log = run_dir / "metrics.jsonl"
    if new_log.is_file() and sha256(new_log) == sha256(old_log):
        return hist  # the same run published again (e.g. with its metrics filled in)
    if _extends(run_dir, dst):
        return hist  # the same run trained further (--resume): its log holds the published one
    if not _continues(run_dir, dst, name):
        return ""
    k = 1 + max((json.loads(x).get("segment", -1) for x in hist.splitlines() if x.strip()), default=-1)
    lines = [json.dumps({**json.loads(x), "segment": k}) for x in old_log.read_text().splitlines() if x.strip()]
    return hist + "".join(x + "\n" for x in lines)


def _edit_manifest(root: Path, edit) -> dict:
    """Reads the manifest of ``root``, applies ``edit(manifest)`` and writes it back, holding a lock
    so that publishers running side by side do not lose each other's entries."""
    import fcntl

    with open(root / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest(root)
        edit(manifest)
        write_manifest(manifest, root)
    return manifest


def update_entry(name: str, fields: dict, root=None) -> dict:
    """Sets ``fields`` in the manifest entry of the published model ``name`` (for example its
    ``metrics``, measured on the published files after :func:`publish`); the files stay as they are.
    Returns the updated entry."""
    root = Path(root or PRETRAINED_DIR)
    reserved = sorted({"dir", "files", "size_bytes", "stage", "weights"} & set(fields))
    if reserved:
        raise ValueError(f"update_entry cannot change {reserved}: they describe the published files; "
                         f"publish the run again instead")

    def edit(manifest):
        if name not in manifest:
            known = ", ".join(sorted(manifest)) or "none yet"
            raise CheckpointError(f"no published model named {name!r} in {root / MANIFEST} (published: {known}); "
                                  f"publish it first")
        manifest[name] = {**manifest[name], **fields}

    return _edit_manifest(root, edit)[name]


def _half_copy(src: Path, dst: Path) -> None:
    obj = ckpt.load_checkpoint(src)
    obj["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in obj["model"].items()}
    obj["stored_dtype"] = "float16"
    ckpt.atomic_save(obj, dst)


def _same_weights(a: Path, b: Path) -> bool:
    """True when checkpoints ``a`` and ``b`` hold the same tensors (names, dtypes, values), whatever
    else they embed (the config of the run that wrote them)."""
    if not b.is_file():
        return False
    try:
        wa, wb = ckpt.load_checkpoint(a)["model"], ckpt.load_checkpoint(b)["model"]
    except Exception:  # noqa: BLE001 - an unreadable published file is simply replaced
        return False
    return wa.keys() == wb.keys() and all(
        wa[k].dtype == wb[k].dtype and wa[k].shape == wb[k].shape and torch.equal(wa[k], wb[k]) for k in wa)


def publish(run_dir, name: str, info: dict, root=None, half: bool = True, stage: str = "final",
            weights: str = "final") -> dict:
    """Copies a finished run into ``pretrained/NAME`` and records it in the manifest.

    ``weights="ema"``: the published ``model.pt`` is the run's moving average of its NAE
    weights (``ema.pt``, ``train.nae.ema``) instead of its last weights; the manifest says so
    (``"weights": "ema"``).

    ``stage="ae"`` publishes a run whose AE phase has ended (a milestone: ``ae.pt``,
    loaded with ``which="ae"``, and the start of NAE runs through ``train.init_ae``).

    ``info`` holds what the manifest should say besides the files: for example
    ``{"config": "configs/mnist_ood.yml", "budget": "...", "overrides": [...],
    "hardware": "...", "wall_time_s": 123.0, "metrics": {...}}``.
    """
    root = Path(root or PRETRAINED_DIR)
    run_dir = Path(run_dir)
    dst = root / name
    if weights not in ("final", "ema"):
        raise ValueError(f"weights must be 'final' or 'ema', not {weights!r}")
    if weights == "ema" and not (run_dir / "ema.pt").is_file():
        raise CheckpointError(f"{run_dir} has no ema.pt: only a finished run trained with train.nae.ema has "
                              f"a moving average of its weights to publish")
    if stage == "final" and not (run_dir / "model.pt").is_file():
        raise CheckpointError(f"{run_dir} has no model.pt: only finished runs can be published "
                              f"(publish a finished AE phase with stage='ae')")
    if stage == "ae" and not (run_dir / "ae.pt").is_file():
        raise CheckpointError(f"{run_dir} has no ae.pt: its AE phase has not finished")
    history = _history(run_dir, dst, name)
    # written next to the published folder first, then swapped in: a publish that fails half-way
    # leaves the model published before it as it was
    tmp = root / f".{name}.publishing"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files = {}
    if history:
        (tmp / HISTORY).write_text(history)
        files[HISTORY] = sha256(tmp / HISTORY)
    for fname in RUN_FILES:
        if fname == "ema.pt" and weights == "ema" or stage == "ae" and fname in ("model.pt", "ema.pt"):
            continue  # the ema is the model.pt; a milestone has the AE only
        src = run_dir / ("ema.pt" if weights == "ema" and fname == "model.pt" else fname)
        if not src.is_file():
            continue
        if fname.endswith(".pt") and half:
            _half_copy(src, tmp / fname)
        else:
            shutil.copy2(src, tmp / fname)
        if fname == "ae.pt" and _same_weights(tmp / fname, dst / fname):
            # a continuation of the NAE phase: the AE is the published one, so its file stays byte
            # for byte (its hash, the AE's metrics measured on it, no second copy in the repository)
            shutil.copy2(dst / fname, tmp / fname)
        files[fname] = sha256(tmp / fname)
    old = root / f".{name}.replaced"
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    if old.exists():
        shutil.rmtree(old)
    entry = {"dir": name, "files": files, "url": None, "stage": stage, "weights": weights, **info}
    entry["size_bytes"] = sum((dst / f).stat().st_size for f in files)
    _edit_manifest(root, lambda manifest: manifest.__setitem__(name, entry))
    if half:  # the run keeps its fp32 weights: mark it as the source, so loading it is not a "corrupt copy"
        try:
            (run_dir / SOURCE_MARKER).write_text(json.dumps({"name": name, "root": str(root.resolve()),
                                                             "weights": "float16 copies"}) + "\n")
        except OSError:
            pass  # a read-only run directory: loading it will need verify=False
    return entry
