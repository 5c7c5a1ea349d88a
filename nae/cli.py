"""The command line: ``python -m nae {train,evaluate,sample,data} ...``.

Errors a user can fix (bad paths, missing data or checkpoints, config mistakes) are
printed as one line on stderr, with exit status 2; bugs keep their traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import NAEError, TrainingInterrupted


def _resume_config(args, out: Path):
    """``(saved config, extend)`` of ``--resume``: key=value may change the schedule and the
    learning rates; CONFIG, --budget and --data, when given, must match the run."""
    from .config import RESUMABLE_KEYS, config_diff, get_dotted, load_config, load_saved_config

    if out is None:
        raise NAEError("--resume needs --out RUN_DIR (the run directory to continue)")
    if not (out / "config.yml").is_file():
        raise NAEError(f"cannot resume: {out / 'config.yml'} does not exist")
    saved = load_saved_config(out / "config.yml")
    if args.budget and args.budget != saved.budget:
        raise NAEError(f"--budget {args.budget} does not match the run in {out} (budget {saved.budget}); "
                       f"drop --budget to resume it")
    if args.data and args.data != saved.data.indist:
        raise NAEError(f"--data {args.data} does not match the run in {out} (data.indist {saved.data.indist}); "
                       f"drop --data to resume it")
    if not args.config:
        return saved, list(args.overrides)
    data = [("data.indist", args.data)] if args.data else []
    given = load_config(args.config, saved.budget, [*args.overrides, *data])
    if given.train.precision == "auto":  # the run resolved it when it started, and keeps it
        given.train.precision = saved.train.precision
    keys = config_diff(saved, given)
    fixed = [f"{k} (run {get_dotted(saved, k)!r}, given {get_dotted(given, k)!r})"
             for k in keys if k not in RESUMABLE_KEYS]
    if fixed:
        raise NAEError(f"{args.config} (with the key=value given) does not match the run in {out}: "
                       f"{', '.join(fixed[:4])}{' ...' if len(fixed) > 4 else ''}; resume without CONFIG "
                       f"(`--resume --out {out}`), or start a new run")
    return saved, [(k, get_dotted(given, k)) for k in keys]


class _Notes:
    """One line each, once the run holds its lock: where a resumed run continues, and a stale
    lock taken over."""

    def on_event(self, event, trainer, metrics):
        if trainer.rank > 0:
            return
        if event == "resumed":
            print(trainer.resume_line(), flush=True)
        elif event == "lock_taken_over":
            print(f"note: {trainer.run_dir} was locked by PID {metrics['stale_holder']}, which is no longer "
                  f"running; lock taken over", file=sys.stderr, flush=True)


def _train(args) -> int:
    from .config import load_config
    from .trainer import prepare

    out = Path(args.out) if args.out else None
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise NAEError(f"--max-minutes must be positive, got {args.max_minutes:g}")
    if args.resume:
        cfg, extend = _resume_config(args, out)
    else:
        overrides = list(args.overrides)
        if args.data:
            overrides.append(("data.indist", args.data))
        cfg = load_config(args.config, args.budget, overrides)
        if args.device:
            cfg.device = args.device
        if out is None:
            out = Path("runs") / f"{cfg.name}-{cfg.budget}"
        extend = ()
    if args.precision:
        if args.resume and args.precision != cfg.train.precision:
            raise NAEError(f"--precision {args.precision}: the run in {out} trains in {cfg.train.precision} "
                           f"(its config.yml); a resumed run keeps its precision")
        cfg.train.precision = args.precision
    t = prepare(cfg, out, resume=args.resume, progress=not args.quiet, extend=extend, device=args.device,
                callbacks=[_Notes(), _StartLine()])
    try:
        t.fit(max_minutes=args.max_minutes)
    except TrainingInterrupted as e:  # every process stops together, on rank 0's signal
        if t.rank == 0:
            print(e, file=sys.stderr)
        return e.exit_status
    if t.rank != 0:
        return 0
    done = "finished" if t.state["done"] else "paused (continue with --resume)"
    extra = f" ({t.world} processes, global batch {t.cfg.data.batch_size})" if t.world > 1 else ""
    print(f"run {done}: {out}{extra}")
    return 0


class _StartLine:
    """Prints where a run trains and in which precision, each time training starts or resumes."""

    def on_event(self, event, trainer, metrics):
        if event == "start" and trainer.rank == 0:
            print(f"training {trainer.run_dir}: {trainer.precision_note}", flush=True)


def _evaluate(args) -> int:
    from .config import check_ood_name
    from .evaluate import evaluate_run, format_table, to_json

    ood = None
    if args.ood is not None:
        ood = [s.strip() for s in args.ood.split(",") if s.strip()]
        if not ood:
            raise NAEError(f"--ood {args.ood!r} names no outlier set; give NAME[,NAME...] or leave --ood out "
                           f"for the default list")
        for name in ood:
            check_ood_name(name, "--ood")
    if args.json:
        _check_writable(args.json, "--json")
    res = evaluate_run(args.run_dir, ood, which=args.which, n=args.n, precision=args.precision)
    print(format_table(res))
    if args.json:
        Path(args.json).write_text(to_json(res))
    return 0


def _check_writable(path, option: str) -> None:
    parent = Path(path).parent
    if not parent.is_dir():
        raise NAEError(f"{option} {path}: the directory {parent} does not exist")


#: sample options that must be positive / non-negative: (option, attribute, least value)
_SAMPLE_LIMITS = (("--n", "n", 1), ("--nrow", "nrow", 1), ("--z-steps", "z_steps", 0), ("--x-steps", "x_steps", 0))
_SAMPLE_FORMATS = (".png", ".npy")


def _sample(args) -> int:
    import numpy as np
    import torch

    from .speed import autocast, resolve_precision
    from .run import load_run
    from .viz import save_image_grid, save_scatter

    for option, attr, least in _SAMPLE_LIMITS:
        v = getattr(args, attr)
        if v is not None and v < least:
            raise NAEError(f"{option} must be {'positive' if least else '>= 0'}, got {v}")
    out = Path(args.out)
    if out.suffix not in _SAMPLE_FORMATS:
        raise NAEError(f"--out must end in .png or .npy, got {out.name!r}")
    _check_writable(out, "--out")
    model = load_run(args.run_dir, which=args.which)
    g = torch.Generator().manual_seed(args.seed)
    prec = resolve_precision(args.precision, model.device)
    with autocast(model.device, prec):  # the chain state stays fp32 (see nae.speed)
        if model.kind == "nae":
            x = model.sample(args.n, generator=g, z_steps=args.z_steps, x_steps=args.x_steps)
        else:
            x = model.sample(args.n, generator=g)
    x = x.float()
    if out.suffix == ".npy":
        np.save(out, x.cpu().numpy())
    elif x.dim() == 2:
        save_scatter(x, out)
    else:
        save_image_grid(x, out, nrow=args.nrow, min_cell=64)
    print(f"wrote {args.n} samples to {out} (precision {prec})")
    return 0


def _data(args) -> int:
    from .data import data_root_origin, format_dataset_table, format_missing_sets, list_datasets
    from .settings import config_file

    root, origin = data_root_origin()
    rows = list_datasets(root)
    print(f"data root: {root} ({origin})\n")
    print(format_dataset_table(rows))
    missing = format_missing_sets(rows)
    if missing:
        print(f"\nMissing sets\n{missing}")
    print("\nTo use another data root (the first of these that is set wins):")
    env, line = "export NAE_DATA=/path/to/datasets", 'data_root = "/path/to/datasets"'
    print(f"  {env:36}# for this shell")
    print(f"  {line:36}# once, in {config_file()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m nae`` argument parser, with the sub-commands ``train``, ``evaluate``,
    ``sample`` and ``data``."""
    p = argparse.ArgumentParser(prog="python -m nae", description="Normalized Autoencoders: train, evaluate, sample.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="AE pre-training then NAE training from a config")
    t.add_argument("config", nargs="?", help="a YAML file or a name in configs/ (e.g. mnist_ood)")
    t.add_argument("--budget", choices=["smoke", "full"], help="default: $NAE_BUDGET, else full")
    t.add_argument("--out", help="run directory (default runs/NAME-BUDGET)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint; key=value may then only change the "
                        "schedule (e.g. train.nae.max_iters=300 to train a finished run longer) or the learning "
                        "rates (train.nae.lr=1e-6); CONFIG and --budget, if given, must match the run")
    t.add_argument("--max-minutes", type=float, help="stop cleanly at a checkpoint after this many minutes")
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's, auto)")
    t.add_argument("--data", help="in-distribution data instead of the config's: a registered name, "
                                  "folder:PATH, npy:PATH or npz:PATH (same as data.indist=...)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="train.precision: auto (default; bf16 where it is fast, see nae.speed), fp32 or bf16")
    t.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.nae.epochs=5")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="OOD metrics of a run against outlier sets")
    e.add_argument("run_dir")
    e.add_argument("--ood", help="comma-separated outlier sets (default: the paper's list for the in-distribution set)")
    e.add_argument("--json", help="also write the results to this JSON file")
    e.add_argument("--which", choices=["final", "ae", "ema"], default="final",
                   help="ae: the pre-trained AE of the run; ema: the moving average of its NAE weights (train.nae.ema)")
    e.add_argument("--n", type=int, help="use only the first n test samples of each set")
    e.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 where it is fast, as in training (see nae.speed)")
    e.set_defaults(func=_evaluate)

    s = sub.add_parser("sample", help="draw samples from a trained model")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nrow", type=int, default=8, help="images per row of the .png grid (default 8)")
    s.add_argument("--z-steps", type=int, help="latent chain length (default: the config's)")
    s.add_argument("--x-steps", type=int, help="input chain length (default: the config's)")
    s.add_argument("--which", choices=["final", "ae", "ema"], default="final")
    s.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 where it is fast, as in training (see nae.speed)")
    s.set_defaults(func=_sample)

    d = sub.add_parser("data", help="list the registered data sets and where they were looked for")
    d.set_defaults(func=_data)
    return p


def main(argv=None) -> int:
    """Runs ``python -m nae`` on ``argv`` (default ``sys.argv[1:]``); ``key=value`` words anywhere
    become train overrides.  Returns the exit code: the command's, 2 on an NAEError, 130 on Ctrl-C."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come before or after the options
    bad = [e for e in extra if e.startswith("-") or "=" not in e or args.command != "train"]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    if args.command == "train" and args.config and "=" in args.config and not Path(args.config).exists():
        args.overrides, args.config = [args.config, *args.overrides], None  # `--resume --out RUN key=value`
    if args.command == "train" and not args.resume and not args.config:
        parser.error("train needs a CONFIG (or --resume --out RUN_DIR)")
    try:
        return args.func(args)
    except NAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
