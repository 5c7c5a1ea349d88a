"""Outlier-detection evaluation of a trained model against registered outlier sets."""
from __future__ import annotations

import json
from typing import Iterable, Optional

import torch

from .data.selection import default_ood, indist_test_set, outlier_set
from .errors import DataError
from .metrics import FPR95_DEFINITION, ood_metrics

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


@torch.no_grad()
def evaluate_model(model, cfg, ood: Iterable[str], n: Optional[int] = None, batch_size: int = 256,
                   scores: bool = False, precision: str = "auto") -> dict:
    """Scores the in-distribution test set and each outlier set's test split.

    Returns ``{"in_distribution", "n_in", "auroc": {name: value}, "aupr_in", "aupr_out",
    "fpr95", "n": {name: count}, "absent": {name: reason}}`` (the metrics of
    :func:`nae.metrics.ood_metrics`; ``fpr95`` is the share of the outliers accepted when 95% of
    the inliers are kept, :func:`nae.metrics.fpr_at_95_tpr`).  A set that is not found is
    listed under ``absent`` (and its metrics are ``None``), never silently dropped.
    ``precision`` (``auto``, ``fp32``, ``bf16``) is resolved as in training
    (:func:`nae.speed.resolve_precision`) and recorded as ``res["precision"]``.
    """
    from .speed import autocast, resolve_precision

    prec = resolve_precision(precision, model.device)

    def predict(x):
        with autocast(model.device, prec):
            return model.predict(x, batch_size).numpy()

    inlier = indist_test_set(cfg, n)
    s_in = predict(inlier.as_float())
    res = {"in_distribution": cfg.data.indist, "n_in": int(len(s_in)), "precision": prec,
           **{m: {} for m in METRICS}, "n": {}, "absent": {}}
    if scores:
        res["scores"] = {"in": s_in}
    for name in ood:
        try:
            ds = outlier_set(cfg, name, "test", n=n)
        except DataError as e:
            res["absent"][name] = str(e)
            for m in METRICS:
                res[m][name] = None
            continue
        s_out = predict(ds.as_float())
        for k, v in ood_metrics(s_in, s_out).items():
            res[k][name] = v
        res["n"][name] = int(len(s_out))
        if scores:
            res["scores"][name] = s_out
    return res


def watched_sets(cfg) -> list[str]:
    """The outlier sets a run validates against during NAE training (``data.ood_val`` and
    ``data.ood_target``), in order, without repeats."""
    names = [cfg.data.ood_val, cfg.data.ood_target]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]


@torch.no_grad()
def validation_auroc(model, cfg, ood: str = "heldout", precision: str = "fp32") -> float:
    """The AUROC that training logs at each validation: the validation split of the inliers
    against the validation split of ``ood``, ``data.n_val`` images of each (2,000 when unset).
    For scoring a model that was not logged that way (the pre-trained AE, a model another run
    continued) on the very images a run validated on."""
    from .data import training_sets
    from .metrics import auroc
    from .speed import autocast, resolve_precision

    prec = resolve_precision(precision, model.device)
    _, val = training_sets(cfg)
    x_out = outlier_set(cfg, ood, "val", n=cfg.data.n_val or 2000).as_float()
    bs = cfg.data.eval_batch_size
    with autocast(model.device, prec):
        e_in, e_out = model.predict(val.as_float(), bs), model.predict(x_out, bs)
    return float(auroc(e_in.numpy(), e_out.numpy()))


def evaluate_run(run_dir, ood: Optional[Iterable[str]] = None, which: str = "final", n=None, device="cpu",
                 precision: str = "auto") -> dict:
    """Loads a run directory (or published model directory) and evaluates it."""
    from .run import load_run

    from .config import check_ood_name

    names = None if ood is None else list(ood)
    for name in names or ():  # a misspelt name is an error; a registered set that is missing is "absent"
        check_ood_name(name, "outlier set")
    model = load_run(run_dir, which=which, device=device)
    names = names or default_ood(model.config)
    return evaluate_model(model, model.config, names, n=n, precision=precision)


#: the line under :func:`format_table`'s table that says what its FPR@95 column is
FPR95_NOTE = f"FPR@95: {FPR95_DEFINITION} (lower is better)"


def format_table(res: dict) -> str:
    """The result of :func:`evaluate_model` as a plain-text table, with a line saying what its
    FPR@95 column is (:data:`FPR95_NOTE`), since the name is read two ways (inliers or outliers
    as the positive class)."""
    names = list(res["auroc"])
    rows = [("outlier set", "n", "AUROC", "AUPR-in", "AUPR-out", "FPR@95")]
    for name in names:
        if name in res["absent"]:
            rows.append((name, "-", "absent", "", "", ""))
        else:
            rows.append((name, str(res["n"][name]), *(f"{res[m][name]:.4f}" for m in METRICS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    prec = f", precision {res['precision']}" if res.get("precision") else ""
    lines = [f"in-distribution: {res['in_distribution']} (test, n={res['n_in']}{prec})"]
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(FPR95_NOTE)
    for name, why in res["absent"].items():
        lines.append(f"absent: {name}: {why.splitlines()[0]}")
    return "\n".join(lines)


def to_json(res: dict) -> str:
    """The result of :func:`evaluate_model` as JSON (without the raw scores)."""
    keep = {k: v for k, v in res.items() if k != "scores"}
    return json.dumps(keep, indent=2)
