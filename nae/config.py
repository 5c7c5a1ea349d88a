"""Typed configuration objects, loaded from YAML with strict key checking.

A run is described by one :class:`RunConfig`: small nested dataclasses for the data,
the model, the sampler and the two training phases.  ``load_config`` reads a YAML
file, applies the chosen budget (``smoke`` or ``full``) and ``key=value`` overrides,
and checks every key at every level: an unknown or misspelt key raises
:class:`~nae.errors.ConfigError` naming the key and listing the valid ones.

Budgets live in the YAML file itself::

    budgets:
      smoke: {data.n_train: 512, train.ae.epochs: 1}
      full: {}

The budget is chosen by the ``budget`` argument, else the environment variable
``NAE_BUDGET``, else ``full``.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from .errors import ConfigError

BUDGETS = ("smoke", "full")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------------------------
# the config objects


@dataclass
class DataConfig:
    """The data of a run: the in-distribution set, the outlier sets watched in training, batching."""
    indist: str = "MNIST"             #: in-distribution set (see ``python -m nae data``)
    holdout: Optional[list] = None    #: digits held out (MNISTHoldout only)
    ood_val: Optional[str] = None     #: outlier set watched during NAE training
    ood_target: Optional[str] = None  #: second outlier set watched during NAE training
    hflip: bool = False               #: random horizontal flips in training
    dequantize: bool = False          #: uniform dequantisation in training
    batch_size: int = 128
    n_train: Optional[int] = None     #: use only the first n training samples
    n_val: Optional[int] = None       #: use only the first n validation samples
    eval_batch_size: int = 256


@dataclass
class ModelConfig:
    """The model: its kind (nae, ae, vae), shapes, networks, latent sphere and temperature."""
    kind: str = "nae"                 #: nae | ae | vae
    x_shape: list = field(default_factory=lambda: [1, 28, 28])
    z_dim: int = 32
    encoder: dict = field(default_factory=lambda: {"name": "conv2fc"})
    decoder: dict = field(default_factory=lambda: {"name": "deconv2"})
    spherical: bool = True            #: project latents onto the unit sphere
    temperature: float = 1.0
    learn_temperature: bool = False
    x_bound: Optional[list] = field(default_factory=lambda: [0.0, 1.0])
    decoder_sigma: float = 0.5        #: VAE Gaussian decoder std (2-D data)
    learn_decoder_sigma: bool = False


@dataclass
class ChainConfig:
    """One Langevin chain: steps, step size s, noise sigma, bounds, gradient clipping, MH."""
    n_steps: int = 10
    step_size: Optional[float] = None   #: None: sigma**2 / 2
    noise_std: Optional[float] = None   #: None: sqrt(2 * step_size)
    bound: Optional[Any] = None         #: [lo, hi], "spherical" or None
    clip_grad: Optional[float] = None
    clip_type: str = "row"              #: row (original V1) | element (original V2)
    noise_anneal: bool = False          #: sigma_k = sigma_0 / max(1, k)
    mh: bool = False                    #: Metropolis-Hastings correction (per sample)
    reject_boundary: bool = False


@dataclass
class SamplerConfig:
    """The NAE's negative sampler: its kind, the replay buffer, the latent and input chains."""
    kind: str = "on_manifold"          #: on_manifold | pcd | cd | x
    replay_ratio: float = 0.95
    buffer_size: int = 10000
    z_chain: ChainConfig = field(default_factory=lambda: ChainConfig(10, 0.2, 0.05, "spherical"))
    x_chain: ChainConfig = field(default_factory=lambda: ChainConfig(50, 10.0, 0.05, [0.0, 1.0], 0.01, "row", True))
    init_bound: Optional[list] = None  #: PCD: fresh chains start uniform in this box
    #: negative samples per NAE step (None: as many as the batch has data).  Fewer makes a
    #: step cheaper; E(x-) and E(x-)^2 are still averaged, so the loss stays unbiased
    n_negatives: Optional[int] = None


@dataclass
class AEPhaseConfig:
    """The AE pre-training phase: schedule, learning rate, clipping, penalties, early stopping."""
    epochs: int = 100
    max_iters: Optional[int] = None    #: stop the phase after this many iterations
    lr: float = 1e-4
    clip_grad_norm: Optional[float] = 0.1
    l2_enc: float = 0.0
    l2_dec: float = 0.0
    val_every: int = 1000
    patience: Optional[int] = 4        #: early stopping after this many validations without improvement
    #: start the phase from these AE weights (an ``ae.pt``, a run directory or a published model's
    #: name) instead of a random initialisation, with a fresh optimiser: the way to train a
    #: published AE longer; ``epochs`` and ``max_iters`` then count from these weights
    init: Optional[str] = None


#: the NAE losses (``train.nae.loss``); both add gamma * mean E(x-)^2, see :meth:`nae.models.NAE.loss`
NAE_LOSSES = {
    "energy_difference": "mean E(x+) - mean E(x-) (the original models/nae.py, NAE.train_step)",
    "energy_difference_over_T": "(mean E(x+) - mean E(x-)) / T (the original models/nae.py, NAE_L2_OMI.train_step)",
}
#: the names of ``train.nae.loss`` before they said what they compute, still read (the
#: config.yml of earlier runs and of the published models): deprecated
LOSS_ALIASES = {"v1": "energy_difference", "v2": "energy_difference_over_T"}


@dataclass
class NAEPhaseConfig:
    """The NAE phase: schedule, learning rates, gamma, penalties and the loss variant.

    ``loss``: a key of :data:`NAE_LOSSES`; the deprecated names ``v1`` and ``v2`` are read as
    ``energy_difference`` and ``energy_difference_over_T``."""
    epochs: int = 50
    max_iters: Optional[int] = None
    lr: float = 1e-5
    temperature_lr: float = 1e-3
    gamma: float = 1.0
    l2_enc: float = 0.0
    l2_dec: float = 0.0
    z_norm_reg: float = 0.0
    loss: str = "energy_difference"    #: energy_difference (original NAE) | energy_difference_over_T (NAE_L2_OMI)
    val_every: int = 1000
    clip_grad_norm: Optional[float] = None
    #: decay of an exponential moving average of the weights, per NAE iteration (e.g. 0.99: an
    #: average over about the last 100 iterations); validations score it too (``ema_auroc_*``) and
    #: the run saves it as ``ema.pt`` (``load_run(which="ema")``).  Training itself (the chains,
    #: the gradient steps) never uses it.  None: off (the original)
    ema: Optional[float] = None

    def __post_init__(self):
        self.loss = LOSS_ALIASES.get(self.loss, self.loss)


@dataclass
class TrainConfig:
    """Both phases, checkpointing, the start from a trained AE, and the numeric precision."""
    ae: AEPhaseConfig = field(default_factory=AEPhaseConfig)
    nae: NAEPhaseConfig = field(default_factory=NAEPhaseConfig)
    ckpt_every: int = 200              #: iterations between checkpoints
    ckpt_minutes: Optional[float] = 5.0  #: also checkpoint after this many minutes of wall time (None: off)
    sample_every: Optional[int] = None
    #: start the NAE phase from this autoencoder instead of pre-training one: the ``ae.pt``
    #: of another run (or its run directory), or a published model's name
    init_ae: Optional[str] = None
    #: with ``init_ae``: continue the NAE phase from these NAE weights (a ``model.pt``, a run
    #: directory or a published model's name) with a fresh optimiser and replay buffer;
    #: ``init_ae`` stays the run's AE (its ``ae.pt``, the baseline)
    init_nae: Optional[str] = None
    #: CPU speed: flush denormal floats (below 1.2e-38) to zero during fit().  Late in training
    #: denormals made the MNIST AE step 2.3-2.7x slower on our Xeon; off by default until its
    #: effect on results is shown (see nae.speed)
    flush_denormal: bool = False
    precision: str = "auto"            #: auto | fp32 | bf16 (auto: bf16 where it is fast, see nae.speed)


@dataclass
class RunConfig:
    """Everything a run is: read from YAML by load_config, saved as the run's config.yml."""
    name: str = "run"
    seed: int = 1
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: str = "full"               #: filled in by load_config

    def to_dict(self) -> dict:
        """The config as nested plain dicts (what config.yml holds)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------
# building dataclasses from dicts with strict checking


def _unknown_key(key: str, valid, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"unknown config key {where + key!r}.{hint} Valid keys{' under ' + where[:-1] if where else ''}: "
        f"{', '.join(sorted(valid))}"
    )


def _coerce(value, tp, where: str):
    """Checks (and gently converts) ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where!r} must be a mapping, got {value!r}")
        return from_dict(tp, value, where + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {where!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"config key {where!r} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads 1e-4 as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {where!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {where!r} must be a string, got {value!r}")
        return value
    if tp is list or origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config key {where!r} must be a list, got {value!r}")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where!r} must be a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls, data: dict, where: str = ""):
    """Builds dataclass ``cls`` from ``data``; unknown keys are errors."""
    if data is None:
        data = {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(str(key), names, where)
        kwargs[key] = _coerce(value, hints[key], where + key)
    return cls(**kwargs)


def _set_dotted(d: dict, dotted: str, value, cls) -> None:
    """Sets ``a.b.c = value`` in the nested dict ``d``, validating each key against ``cls``."""
    parts = dotted.split(".")
    where = ""
    node, tp = d, cls
    for i, part in enumerate(parts):
        if not (dataclasses.is_dataclass(tp)):
            # free-form mappings (network kwargs) accept any key
            if i == len(parts) - 1:
                node[part] = value
                return
            node = node.setdefault(part, {})
            continue
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            raise _unknown_key(part, names, where)
        sub_tp = typing.get_type_hints(tp)[part]
        if typing.get_origin(sub_tp) in (Union, types.UnionType):
            sub_tp = next(a for a in typing.get_args(sub_tp) if a is not type(None))
        if i == len(parts) - 1:
            node[part] = value
        else:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node, tp = node[part], sub_tp
        where += part + "."


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.nae.lr=1e-5"`` -> ``("train.nae.lr", 1e-05)`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.nae.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def resolve_config_path(path: str | os.PathLike) -> Path:
    """Accepts a file path or the bare name of a config in ``configs/`` (``mnist_ood``)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yml", CONFIG_DIR / f"{p}.yaml"):
        if cand.is_file():
            return cand
    known = sorted(q.stem for q in CONFIG_DIR.glob("*.yml"))
    raise ConfigError(f"config file {str(path)!r} not found; give a path or one of: {', '.join(known)}")


def choose_budget(budget: str | None = None) -> str:
    """The budget: ``budget`` if given, else ``$NAE_BUDGET``, else ``full``."""
    b = budget or os.environ.get("NAE_BUDGET") or "full"
    if b not in BUDGETS:
        raise ConfigError(f"unknown budget {b!r} (from {'--budget' if budget else 'NAE_BUDGET'}); choose one of {BUDGETS}")
    return b


def config_from_dict(raw: dict, budget: str | None = None, overrides=()) -> RunConfig:
    """Builds a RunConfig from a raw dict (as read from YAML), a budget and overrides."""
    raw = dict(raw or {})
    budgets = raw.pop("budgets", {}) or {}
    if not isinstance(budgets, dict):
        raise ConfigError("'budgets' must map budget names to {key: value} overrides")
    for b in budgets:
        if b not in BUDGETS:
            raise ConfigError(f"unknown budget {b!r} under 'budgets'; valid budgets: {', '.join(BUDGETS)}")
    chosen = choose_budget(budget)
    raw.pop("budget", None)
    for key, value in (budgets.get(chosen) or {}).items():
        _set_dotted(raw, key, value, RunConfig)
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        _set_dotted(raw, key, value, RunConfig)
    cfg = from_dict(RunConfig, raw)
    cfg.budget = chosen
    validate(cfg)
    return cfg


def load_config(path, budget: str | None = None, overrides=()) -> RunConfig:
    """Reads a YAML config, applies the budget and ``key=value`` overrides, and checks it."""
    p = resolve_config_path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not raw:  # an empty file would silently start the full default schedule
        raise ConfigError(f"{p}: the config file is empty; start from one of configs/*.yml")
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a config must be a mapping at the top level")
    try:
        return config_from_dict(raw, budget, overrides)
    except ConfigError as e:
        raise ConfigError(f"{p.name}: {e}") from None


_CHOICES = {
    "model.kind": ("nae", "ae", "vae"),
    "sampler.kind": ("on_manifold", "pcd", "cd", "x"),
    "train.precision": ("auto", "fp32", "bf16"),
    "train.nae.loss": tuple(NAE_LOSSES),
}


def get_dotted(cfg, dotted: str):
    """The value of ``"train.nae.lr"`` in a config."""
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _finite(v) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


#: the ranges of numeric keys: (test, what the value must be); None passes where the
#: type allows it.  Values outside them cannot give a meaningful run.
_POSITIVE = (lambda v: v > 0 and _finite(v), "positive")
_NON_NEGATIVE = (lambda v: v >= 0 and _finite(v), ">= 0")
_LEARNING_RATE = (lambda v: 0 < v <= 1, "in (0, 1] (Adam moves every weight by about lr per step)")
_RANGES = {
    "data.batch_size": _POSITIVE,
    "data.eval_batch_size": _POSITIVE,
    "data.n_train": _POSITIVE,
    "data.n_val": _POSITIVE,
    "model.z_dim": _POSITIVE,
    "model.temperature": _POSITIVE,
    "model.decoder_sigma": _POSITIVE,
    "sampler.buffer_size": _NON_NEGATIVE,
    "sampler.z_chain.step_size": _POSITIVE,
    "sampler.x_chain.step_size": _POSITIVE,
    "sampler.z_chain.noise_std": _NON_NEGATIVE,
    "sampler.x_chain.noise_std": _NON_NEGATIVE,
    "sampler.z_chain.n_steps": _NON_NEGATIVE,
    "sampler.x_chain.n_steps": _NON_NEGATIVE,
    "train.ae.lr": _LEARNING_RATE,
    "train.nae.lr": _LEARNING_RATE,
    "train.nae.temperature_lr": _NON_NEGATIVE,
    "train.ae.epochs": _NON_NEGATIVE,
    "train.nae.epochs": _NON_NEGATIVE,
    "train.ae.max_iters": _NON_NEGATIVE,
    "train.nae.max_iters": _NON_NEGATIVE,
    "train.ae.val_every": _POSITIVE,
    "train.nae.val_every": _POSITIVE,
    "train.nae.ema": (lambda v: 0 < v < 1, "in (0, 1): the weight of the old average at each NAE iteration"),
    "train.ae.patience": _POSITIVE,
    "train.ckpt_every": _POSITIVE,
    "train.ckpt_minutes": _POSITIVE,
    "train.sample_every": _POSITIVE,
}

#: the phase that makes the model of each kind: it must train at least one iteration
#: (the AE pre-training of an NAE may be skipped with epochs: 0)
_MAIN_PHASE = {"nae": "nae", "ae": "ae", "vae": "ae"}

#: the data keys naming an outlier set watched during training
_OOD_KEYS = ("data.ood_val", "data.ood_target")


def _check_ranges(cfg: RunConfig) -> None:
    if cfg.train.ae.init and cfg.train.init_ae:
        raise ConfigError("train.ae.init (train the AE phase on from these weights) and train.init_ae (skip the AE "
                          "phase, use this AE) exclude each other: give one of them")
    if cfg.train.init_nae and not cfg.train.init_ae:
        raise ConfigError("train.init_nae needs train.init_ae too (the run's AE, its baseline): give both, e.g. "
                          "train.init_ae=NAME train.init_nae=NAME for a published model NAME")
    for key, (ok, what) in _RANGES.items():
        v = get_dotted(cfg, key)
        if v is not None and not ok(v):
            raise ConfigError(f"config key {key!r} is {v!r}; it must be {what}")
    phase = _MAIN_PHASE[cfg.model.kind]
    pc = getattr(cfg.train, phase)
    for key in ("epochs", "max_iters"):
        if getattr(pc, key) == 0:
            raise ConfigError(f"config key 'train.{phase}.{key}' is 0: the {phase.upper()} phase makes the "
                              f"model of kind {cfg.model.kind!r} and must train at least one iteration")


def check_ood_name(name: str, where: str) -> None:
    """A registered data set name, ``heldout`` or a user spec (``folder:PATH`` ...): else a
    ConfigError naming ``where`` (a config key or option).  Whether the files are there is not
    checked: a registered set that is missing is reported as absent where it is used."""
    from .data.registry import USER_PREFIXES, resolve
    from .errors import DataError

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} is empty; give a data set name (see `python -m nae data`)")
    if name.lower() == "heldout" or name.startswith(USER_PREFIXES):
        return
    try:
        resolve(name)
    except DataError as e:
        raise ConfigError(f"{where}: {e}") from None


def validate(cfg: RunConfig) -> None:
    """Checks values that a type alone cannot (choices, ranges, data set names)."""
    for dotted, choices in _CHOICES.items():
        obj = get_dotted(cfg, dotted)
        if obj not in choices:
            raise ConfigError(f"config key {dotted!r} is {obj!r}; choose one of {', '.join(choices)}")
    for chain_name in ("z_chain", "x_chain"):
        chain = getattr(cfg.sampler, chain_name)
        if chain.clip_type not in ("row", "element"):
            raise ConfigError(f"sampler.{chain_name}.clip_type must be 'row' or 'element', got {chain.clip_type!r}")
        if chain.step_size is None and chain.noise_std is None:
            raise ConfigError(f"sampler.{chain_name}: give step_size, noise_std or both")
    _check_ranges(cfg)
    n_neg = cfg.sampler.n_negatives
    if n_neg is not None:
        if n_neg <= 0:
            raise ConfigError(f"sampler.n_negatives must be positive (or null: the batch size), got {n_neg}")
        if cfg.sampler.kind == "cd" and n_neg > cfg.data.batch_size:
            raise ConfigError(f"sampler.n_negatives={n_neg}: contrastive divergence starts one chain per data "
                              f"image, so it can be at most data.batch_size={cfg.data.batch_size}")
    if not (0.0 <= cfg.sampler.replay_ratio <= 1.0):
        raise ConfigError("sampler.replay_ratio must lie in [0, 1]")
    if len(cfg.model.x_shape) not in (1, 3):
        raise ConfigError("model.x_shape must be [d] (vectors) or [C, H, W] (images)")
    for net in ("encoder", "decoder"):
        if "name" not in getattr(cfg.model, net):
            raise ConfigError(f"model.{net} needs a 'name' (one of the networks in nae.nets.NETS)")
    if len(cfg.model.x_shape) == 3:  # 2-D toy data is generated, never looked up
        for key in _OOD_KEYS:
            name = get_dotted(cfg, key)
            if name is not None:
                check_ood_name(name, f"config key {key!r}")


def save_config(cfg: RunConfig, path: Path, history=()) -> None:
    """Writes ``cfg`` as YAML, atomically (a temporary file renamed over ``path``).

    ``history``: the changes made on resume (``Trainer.history``), appended as comment
    lines, so that the file says when its learning rate or schedule changed and any
    YAML reader still sees only the config."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    if history:
        text += "# history of changes made on --resume (phase, step, key: old -> new):\n"
        text += "".join(f"#   {h['phase']} {h['step']}: {h['key']}: {h['old']} -> {h['new']}\n" for h in history)
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_saved_config(path: Path) -> RunConfig:
    """Reads a config written by :func:`save_config` (a run directory's config.yml)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    budget = raw.pop("budget", "full")
    cfg = from_dict(RunConfig, raw)
    cfg.budget = budget
    return cfg


#: keys that may change when a run is resumed: the schedule only (how long, how often to
#: validate or checkpoint), never what is computed
SCHEDULE_KEYS = ("train.ae.max_iters", "train.ae.epochs", "train.ae.val_every",
                 "train.nae.max_iters", "train.nae.epochs", "train.nae.val_every", "train.ckpt_every",
                 "train.ckpt_minutes")

#: learning rates may change on resume too (the advice after a divergence); the change is
#: recorded in the run's history (checkpoint, config.yml and metrics.jsonl)
LR_KEYS = ("train.ae.lr", "train.nae.lr", "train.nae.temperature_lr")

#: settings of speed only, which may change on resume (recorded like a learning rate)
SPEED_KEYS = ("train.flush_denormal",)

#: what is watched, not what is trained: the moving average of the weights may start (or its
#: decay change) on resume; it starts from the weights of that iteration
WATCH_KEYS = ("train.nae.ema",)

RESUMABLE_KEYS = SCHEDULE_KEYS + LR_KEYS + SPEED_KEYS + WATCH_KEYS


def config_diff(a: RunConfig, b: RunConfig, ignore=("budget", "device")) -> list:
    """The dotted keys whose values differ between two configs (``ignore``: top-level keys)."""
    out = []

    def walk(x, y, where):
        if isinstance(x, dict) and isinstance(y, dict) and not where.endswith(("encoder.", "decoder.")):
            for k in dict.fromkeys([*x, *y]):
                walk(x.get(k), y.get(k), where + str(k) + ".")
        elif x != y:
            out.append(where[:-1])

    da, db = a.to_dict(), b.to_dict()
    for k in ignore:
        da.pop(k, None), db.pop(k, None)
    walk(da, db, "")
    return out


def _yaml_value(v) -> str:
    """``v`` as the right-hand side of a ``key=value`` override (YAML flow style, read back by
    :func:`parse_override` to the same value)."""
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
    return text[:-3].strip() if text.endswith("\n...") else text


def overrides_from(cfg: RunConfig) -> list:
    """The ``key=value`` overrides that turn the run's config file (``configs/NAME.yml`` in the
    run's budget) into ``cfg``: what a run was told on its command line, read back from its
    ``config.yml``.  ``device`` is left out (where a run trained is not part of the recipe)."""
    base = load_config(cfg.name, cfg.budget)
    return [f"{k}={_yaml_value(get_dotted(cfg, k))}" for k in config_diff(base, cfg)]


def schedule_changes(saved: RunConfig, new: RunConfig) -> list:
    """``[(key, new value), ...]`` for the schedule keys where ``new`` differs from ``saved``:
    the ``extend`` that brings a saved run to a grown schedule."""
    changes = []
    for key in SCHEDULE_KEYS:
        a, b = saved, new
        for part in key.split("."):
            a, b = getattr(a, part), getattr(b, part)
        if a != b:
            changes.append((key, b))
    return changes


def extend_schedule(cfg: RunConfig, overrides=()) -> RunConfig:
    """A copy of a saved run's config with schedule keys or learning rates changed
    (``train.nae.max_iters=300``, ``train.nae.lr=1e-6``).

    Used by ``--resume`` to train a run longer than first planned, or on with a smaller
    learning rate; any other key is an error, because it would change the computation
    half-way through a run.  ``Trainer.resume`` checks that the change fits the run's state.
    """
    raw = cfg.to_dict()
    raw.pop("budget", None)
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        if key not in RESUMABLE_KEYS:
            raise ConfigError(f"{key!r} cannot change when a run is resumed (it would change the computation); "
                              f"only the schedule and learning rates can: {', '.join(RESUMABLE_KEYS)}. "
                              f"Start a new run for other changes.")
        _set_dotted(raw, key, value, RunConfig)
    new = from_dict(RunConfig, raw)
    new.budget = cfg.budget
    validate(new)
    return new
