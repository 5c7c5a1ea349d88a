"""Fast tests of the MNIST notebook's helpers (nae.tutorial.mnist_figures) and recipes."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nae.tutorial import mnist_figures as mf  # noqa: E402
from nae.config import load_config  # noqa: E402
from nae.models import build_model  # noqa: E402
from nae.tutorial.notebook import recipe_config  # noqa: E402
from nae.tutorial.recipes import RECIPES, get_recipe  # noqa: E402


def _fake_result(aurocs, n_in=100):
    return {"in_distribution": "MNIST", "n_in": n_in, "auroc": dict(aurocs), "n": {k: 50 for k in aurocs},
            "absent": {}}


# ----------------------------------------------------------------------------- recipes


def test_every_mnist_recipe_exists():
    assert "mnist_ood_nae" in RECIPES
    for d in range(10):
        r = get_recipe(f"mnist_holdout_{d}")
        assert r.config == "mnist_holdout"
        assert r.ood == ["heldout"]
        assert f"data.holdout=[{d}]" in r.overrides


@pytest.mark.parametrize("budget", ["smoke", "full"])
def test_mnist_recipes_load_in_both_budgets(budget):
    cfg = recipe_config("mnist_ood_nae", budget)
    assert cfg.budget == budget and cfg.data.indist == "MNIST"
    for d in (0, 1, 9):
        c = recipe_config(f"mnist_holdout_{d}", budget)
        assert c.data.holdout == [d] and c.data.indist == "MNISTHoldout"
    if budget == "full":
        # the published budget keeps the paper's chains and loss
        assert cfg.sampler.z_chain.n_steps == 10 and cfg.sampler.x_chain.n_steps == 50
        assert cfg.train.nae.gamma == 1.0 and cfg.train.nae.max_iters is not None
        assert c.train.nae.loss == "energy_difference_over_T"
    else:
        smoke = load_config("mnist_ood", budget="smoke")
        assert cfg.train.nae.max_iters == smoke.train.nae.max_iters
        assert cfg.data.n_train == smoke.data.n_train


# ----------------------------------------------------------------------------- tables


def test_auroc_markdown_rows_and_bold_best():
    res = {"AE": _fake_result({"Constant": 0.25, "Noise": 1.0}),
           "NAE": _fake_result({"Constant": 0.9876, "Noise": 1.0})}
    md = mf.auroc_markdown(res)
    lines = md.splitlines()
    assert lines[0] == "In-distribution: MNIST test set, n = 100."
    assert "| outlier set | n | AUROC AE | AUROC NAE |" in lines
    const = next(l for l in lines if l.startswith("| Constant"))
    assert const == "| Constant | 50 | 0.250 | **0.988** |"
    noise = next(l for l in lines if l.startswith("| Noise"))
    assert noise.count("**1.000**") == 2  # a tie: both bold


def test_auroc_markdown_absent_set():
    res = {"AE": _fake_result({"SVHN": None}), "NAE": _fake_result({"SVHN": None})}
    assert "| SVHN | 50 | – | – |" in mf.auroc_markdown(res)
    with pytest.raises(ValueError):
        mf.auroc_markdown({})


def test_holdout_markdown_marks_untrained_digits_and_invents_nothing():
    rows = {1: {"AE": 0.1, "NAE": 0.8}, 9: {"AE": 0.6, "NAE": 0.5}}
    md = mf.holdout_markdown(rows, notes={1: "3 min"})
    lines = md.splitlines()
    assert len(lines) == 2 + 10 + 1  # header, separator, ten digits, mean
    assert lines[2 + 1] == "| 1 | 0.100 | **0.800** | 3 min |"
    assert lines[2 + 9] == "| 9 | **0.600** | 0.500 |  |"
    for d in (0, 2, 3, 4, 5, 6, 7, 8):
        assert lines[2 + d] == f"| {d} | – | – | {mf.NOT_TRAINED} |"
    assert lines[-1] == "| mean of 2 | 0.3500 | 0.6500 | |"


def test_holdout_markdown_nothing_trained():
    md = mf.holdout_markdown({})
    assert md.count(mf.NOT_TRAINED) == 10 and "mean" not in md


def test_holdout_bar_chart_bars_only_for_trained_digits():
    rows = {1: {"AE": 0.1, "NAE": 0.8}, 7: {"AE": 0.3, "NAE": 0.9}}
    fig = mf.holdout_bar_chart(rows)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.1, 0.3, 0.8, 0.9]
    assert sum(t.get_text() == "n/a" for t in ax.texts) == 8
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in range(10)]
    matplotlib.pyplot.close(fig)


# ----------------------------------------------------------------------------- figures


@pytest.fixture(scope="module")
def tiny_models():
    cfg = load_config("mnist_ood", budget="smoke")
    torch.manual_seed(0)
    nae_model = build_model(cfg).eval()
    cfg_ae = load_config("mnist_ood", budget="smoke", overrides=["model.kind=ae"])
    ae = build_model(cfg_ae).eval()
    nae_model.config = cfg
    return cfg, ae, nae_model


def test_example_images_are_fixed_by_seed(tiny_models):
    cfg = tiny_models[0]
    a = mf.example_images(cfg, ["MNIST", "Constant"], n=3, seed=0)
    b = mf.example_images(cfg, ["MNIST", "Constant"], n=3, seed=0)
    c = mf.example_images(cfg, ["MNIST"], n=3, seed=1)
    assert list(a) == ["MNIST", "Constant"]
    assert a["MNIST"].shape == (3, 1, 28, 28) and a["MNIST"].dtype == torch.float32
    assert torch.equal(a["MNIST"], b["MNIST"]) and torch.equal(a["Constant"], b["Constant"])
    assert not torch.equal(a["MNIST"], c["MNIST"])
    # a Constant image is one grey level
    x = a["Constant"]
    assert torch.all(x.flatten(1).std(1) == 0)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_reconstruction_figure_layout_and_energies(tiny_models):
    _, ae, nae_model = tiny_models
    images = {"A": torch.rand(4, 1, 28, 28), "B": torch.zeros(4, 1, 28, 28)}
    fig = mf.reconstruction_figure(images, {"AE": ae, "NAE": nae_model})
    assert len(fig.axes) == 3 * 2
    axes = np.array(fig.axes).reshape(3, 2)
    assert [a.get_title() for a in axes[0]] == ["A", "B"]
    assert [a.get_ylabel() for a in axes[:, 0]] == ["input", "AE", "NAE"]
    with torch.no_grad():
        e = float(ae.energy(images["B"]).mean())
    assert axes[1, 1].get_xlabel() == f"E = {e:.3f}"
    matplotlib.pyplot.close(fig)


def test_evaluate_pair_runs_both_models_on_the_same_images(tiny_models):
    cfg, ae, nae_model = tiny_models
    res = mf.evaluate_pair({"AE": ae, "NAE": nae_model}, cfg, ["Constant"], n=20)
    assert set(res) == {"AE", "NAE"}
    for r in res.values():
        assert r["n_in"] == 20 and r["n"]["Constant"] == 20
        assert 0.0 <= r["auroc"]["Constant"] <= 1.0
        assert r["precision"] == "fp32"  # as the manifests' metrics, whatever the CPU's native precision


def test_sample_figure_shape():
    fig = mf.sample_figure(torch.rand(16, 1, 28, 28), nrow=8)
    ax = fig.axes[0]
    img = ax.get_images()[0].get_array()
    assert img.shape[:2] == (2 * 30 + 2, 8 * 30 + 2)
    matplotlib.pyplot.close(fig)


def test_validation_curves_read_the_runs_log(tmp_path):
    import json

    log = [{"event": "validation", "phase": "ae", "step": 100, "val_energy": 0.03},
           {"event": "validation", "phase": "nae", "step": 20, "auroc_heldout": 0.4},
           {"event": "step", "phase": "nae", "step": 30, "e_pos": 0.1},
           {"event": "validation", "phase": "nae", "step": 40, "auroc_heldout": 0.5},
           {"event": "validation", "phase": "nae", "step": 40, "auroc_heldout": 0.55},  # revalidated on resume
           {"event": "validation", "phase": "nae", "step": 60, "auroc_heldout": 0.7}]
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    curves = mf.validation_curves({1: tmp_path / "r1", 2: tmp_path / "missing"})
    assert curves == {1: [(20, 0.4), (40, 0.55), (60, 0.7)]}
    fig = mf.validation_curves_figure(curves, ae_auroc={1: 0.1})
    (line,) = fig.axes[0].get_lines()[:1]
    assert list(line.get_xdata()) == [0, 20, 40, 60] and list(line.get_ydata()) == [0.1, 0.4, 0.55, 0.7]
    matplotlib.pyplot.close(fig)


def test_validation_auroc_matches_what_training_logs(tmp_path):
    """The helper gives the AUROC the trainer logs at a validation, for the same weights."""
    from nae.trainer import Trainer

    cfg = load_config("mnist_holdout", budget="smoke", overrides=["data.holdout=[1]", "train.nae.max_iters=1",
                                                                   "train.nae.val_every=1"])
    t = Trainer(cfg, tmp_path / "ho", progress=False)
    t.fit()
    logged = [v for _, v in t.history.series("auroc_heldout", event="validation")][-1]
    t.model.eval()
    # in the precision the run resolved (bf16 where it is fast, e.g. a CPU with AMX), as the trainer validates
    assert mf.validation_auroc(t.model, cfg, precision=t.cfg.train.precision) == pytest.approx(logged, abs=1e-9)


def test_per_digit_energies_and_table(tiny_models):
    _, ae, nae_model = tiny_models
    rep = mf.per_digit_energies({"AE": ae, "NAE": nae_model}, heldout=9, n=300)
    from nae.data import load_dataset

    test = load_dataset("MNIST", "test", n=300)
    y = np.asarray(test.labels)
    with torch.no_grad():
        e = ae.predict(test.as_float()).numpy()
    assert rep["AE"]["mean_energy"][3] == pytest.approx(float(e[y == 3].mean()), rel=1e-6)
    assert set(rep["NAE"]["auroc_vs_digit"]) == set(range(9))  # every inlier digit, not the held-out one
    from nae.metrics import auroc

    assert rep["AE"]["auroc_vs_digit"][1] == pytest.approx(float(auroc(e[y == 1], e[y == 9])))
    md = mf.per_digit_markdown(rep, 9)
    lines = md.splitlines()
    assert len(lines) == 2 + 10 and lines[-1].startswith("| **9** (held out)")


def test_ae_failure_reports_fractions_and_the_best_reconstructed_outliers():
    from nae.data import outlier_set

    cfg = load_config("mnist_ood", budget="smoke")
    torch.manual_seed(0)
    ae, other = build_model(cfg).eval(), build_model(cfg).eval()
    rep = mf.ae_failure({"AE": ae, "NAE": other}, cfg, ["Constant", "Noise"], k=3, n=64)
    assert set(rep["sets"]) == {"Constant", "Noise"} and rep["n_in"] == 64
    for name, row in rep["sets"].items():
        for lb in ("AE", "NAE"):
            assert 0.0 <= row[lb]["below_median"] <= row[lb]["fpr95"] <= 1.0
        shown = ae.predict(rep["images"][name]).numpy()
        every = np.sort(ae.predict(outlier_set(cfg, name, "test", n=64).as_float()).numpy())
        assert len(shown) == 3 and np.allclose(shown, every[:3], rtol=1e-5)  # the AE's 3 lowest, in order
    md = mf.ae_failure_markdown(rep)
    assert md.count("\n|") == 4 and "FPR@95, NAE" in md  # header, rule, two sets


def test_lever_curves_figure_lines_reference_and_range(tmp_path):
    """One line per run from its log, a dashed line per reference value, the y range asked for."""
    import json

    for name, vals in (("a", [0.8, 0.85]), ("b", [0.82, 0.9])):
        (tmp_path / name).mkdir()
        log = [{"event": "validation", "phase": "nae", "step": 25 * (i + 1), "auroc_heldout": v}
               for i, v in enumerate(vals)]
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    fig = mf.lever_curves_figure({"a": tmp_path / "a", "b": tmp_path / "b"}, reference={"AE": 0.91},
                                 ylim=(0.7, 0.95))
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [list(ln.get_ydata()) for ln in lines[:2]] == [[0.8, 0.85], [0.82, 0.9]]
    assert list(lines[0].get_xdata()) == [25, 50]
    assert lines[2].get_linestyle() == "--" and list(lines[2].get_ydata()) == [0.91, 0.91]
    assert ax.get_ylim() == (0.7, 0.95)
    matplotlib.pyplot.close(fig)


def test_continuations_markdown_has_a_row_per_decision_record(tmp_path):
    import json

    from nae.tutorial.mnist_figures import continuations_markdown

    def record(folder, better, published, before, after):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "publish_decision.json").write_text(json.dumps(
            {"name": "mnist_holdout_3", "nae_iterations": 1234, "better": better, "published": published,
             "validation_auroc": {"run": {"Constant": 1.0, "heldout": after}, "against": {"Constant": 1.0, "heldout": before}},
             "test_auroc": {"run": {"heldout": after - 0.01}, "against": {"heldout": before - 0.01}}}))

    record("a_kept", True, True, 0.70, 0.75)
    record("b_dropped", False, False, 0.75, 0.72)
    record("c_compared", True, False, 0.75, 0.80)  # better, but a dry run (not the named candidate)
    rec = json.loads((tmp_path / "c_compared" / "publish_decision.json").read_text())
    (tmp_path / "c_compared" / "publish_decision_ema.json").write_text(json.dumps({**rec, "weights": "ema", "published": True}))
    (tmp_path / "no_record").mkdir()
    rows = continuations_markdown(tmp_path).splitlines()
    assert len(rows) == 6 and rows[0].startswith("| continuation | weights |")
    assert rows[2] == "| a_kept | final | 1,234 | 0.700 → 0.750 | 0.690 → 0.740 | yes |"
    assert rows[3].endswith("| no: not better |")
    assert rows[4].startswith("| c_compared | average |") and rows[4].endswith("| yes |")
    assert rows[5].startswith("| c_compared | final |") and rows[5].endswith("| compared only |")
    assert continuations_markdown(tmp_path / "no_record").startswith("no continuation records")
    rec = json.loads((tmp_path / "a_kept" / "publish_decision.json").read_text())  # a run that continued 80
    (tmp_path / "a_kept" / "publish_decision.json").write_text(json.dumps({**rec, "nae_iterations_before": 80}))
    assert continuations_markdown(tmp_path).splitlines()[2].startswith("| a_kept | final | 80 + 1,234 |")


def test_spread_markdown_summarises_the_validations_after_a_step(tmp_path):
    import json

    from nae.tutorial.mnist_figures import spread_markdown

    vals = [(25, 0.80, None), (50, 0.90, 0.85), (75, 0.70, 0.84), (100, 0.80, 0.86)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(
        {"event": "validation", "phase": "nae", "step": s, "auroc_heldout": a,
         **({"ema_auroc_heldout": e} if e is not None else {})}) + "\n" for s, a, e in vals))
    rows = spread_markdown({"w": (tmp_path, "auroc_heldout"), "ema": (tmp_path, "ema_auroc_heldout")},
                           from_step=50).splitlines()
    assert rows[2] == "| w | 3 | 0.800 | 0.082 | 0.700 | 0.900 | 0.800 |"
    assert rows[3] == "| ema | 3 | 0.850 | 0.008 | 0.840 | 0.860 | 0.860 |"


def test_continuations_markdown_reads_several_folders_and_keeps_the_names_asked(tmp_path):
    import json

    from nae.tutorial.mnist_figures import continuations_markdown

    for folder, name in (("cont/d3", "mnist_holdout_3"), ("campaign/h6es", "mnist_holdout_6"), ("campaign/ood_es", "mnist_ood_nae")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "publish_decision_ema.json").write_text(json.dumps(
            {"name": name, "nae_iterations": 2500, "better": True, "published": True, "weights": "ema",
             "validation_auroc": {"run": {"heldout": 0.95}, "against": {"heldout": 0.9}},
             "test_auroc": {"run": {"heldout": 0.94}, "against": {"heldout": 0.91}}}))
    rows = continuations_markdown(tmp_path / "cont", tmp_path / "campaign", only="mnist_holdout").splitlines()
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| d3", "| h6es"]
    assert len(continuations_markdown(tmp_path / "cont", tmp_path / "campaign").splitlines()) == 5


def test_continuations_markdown_shows_the_set_asked_or_the_mean_that_decided(tmp_path):
    import json

    from nae.tutorial.mnist_figures import continuations_markdown

    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "publish_decision_ema.json").write_text(json.dumps(
        {"name": "cifar10_ood_gpu", "nae_iterations": 1000, "better": False, "published": False, "weights": "ema",
         "validation_auroc": {"run": {"ConstantGray": 0.90, "Constant": 0.80},
                              "against": {"ConstantGray": 0.93, "Constant": 0.94}},
         "test_auroc": {"run": {"ConstantGray": 0.91, "Constant": 0.81, "Noise": 1.0, "SVHN": None},
                        "against": {"ConstantGray": 0.92, "Constant": 0.93, "Noise": 1.0, "SVHN": None}}}))
    rows = continuations_markdown(tmp_path).splitlines()
    assert rows[2] == "| c1 | average | 1,000 | 0.930 → 0.900 | 0.920 → 0.910 | no: not better |"  # the first watched set
    rows = continuations_markdown(tmp_path, key="mean").splitlines()
    assert "validation AUROC (mean of the watched sets)" in rows[0]
    assert rows[2] == "| c1 | average | 1,000 | 0.935 → 0.850 | 0.925 → 0.860 | no: not better |"
    assert continuations_markdown(tmp_path, key="SVHN").splitlines()[2].split(" | ")[4] == "– → –"  # absent here


def test_decision_markdown_lists_the_watched_sets_then_every_test_set():
    from nae.tutorial.mnist_figures import decision_markdown

    rec = {"validation_auroc": {"run": {"ConstantGray": 0.96, "Constant": 0.92}, "against": {"ConstantGray": 0.93, "Constant": 0.94}},
           "test_auroc": {"run": {"ConstantGray": 0.97, "SVHN": None, "CelebA": 0.49},
                          "against": {"ConstantGray": 0.93, "SVHN": None, "CelebA": 0.78}}}
    rows = decision_markdown(rec, labels=("H200", "continued")).splitlines()
    assert rows[0] == "| split: outlier set | H200 | continued |"
    assert rows[2] == "| validation: ConstantGray | 0.930 | 0.960 |"
    assert rows[5] == "| test: SVHN | absent | absent |" and rows[6] == "| test: CelebA | 0.780 | 0.490 |"


def test_holdout_markdown_says_over_how_many_digits_a_column_is_averaged():
    rows = {1: {"AE": 0.1, "AE, early stopping": 0.2, "NAE": 0.8}, 7: {"AE": 0.3, "NAE": 0.9}}
    md = mf.holdout_markdown(rows, labels=("AE", "AE, early stopping", "NAE"))
    lines = md.splitlines()
    assert lines[2 + 7] == "| 7 | 0.300 | – | **0.900** |  |"
    assert lines[-1] == "| mean of 2 | 0.2000 | 0.2000 (1 digits) | 0.8500 | |"


def _log(run_dir, name, vals, ended=True):
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    rec = [{"event": "validation", "phase": "ae", "step": 10 * (i + 1), "epoch": i, "val_energy": v}
           for i, v in enumerate(vals)]
    rec += [{"event": "step", "phase": "ae", "step": 10 * (i + 1), "epoch": i, "loss": v} for i, v in enumerate(vals)]
    if ended:
        rec.append({"event": "phase_end", "phase": "ae", "step": 10 * len(vals)})
    (run_dir / name).write_text("\n".join(json.dumps(r) for r in rec) + "\n")


def test_early_stopping_ae_takes_the_published_ae_then_the_kept_one_and_invents_none(tmp_path):
    from types import SimpleNamespace

    from nae import checkpoint as ckpt
    from nae.config import save_config

    early = [0.05, 0.04, 0.041, 0.042, 0.043, 0.044]   # best at the 2nd, then 4 validations without a lower one
    capped = [0.05, 0.04, 0.035]
    pub = SimpleNamespace(run_dir=tmp_path / "published_es")
    _log(pub.run_dir, "metrics.jsonl", early)
    assert mf.early_stopping_ae(pub, tmp_path / "nothing", patience=4) == (pub, "the published model's AE")

    pub = SimpleNamespace(run_dir=tmp_path / "published_cap")
    _log(pub.run_dir, "metrics.jsonl", capped)
    kept = tmp_path / "h1es"
    model, why = mf.early_stopping_ae(pub, kept, patience=4)   # no folder yet
    assert model is None and why.startswith("none yet")

    cfg = load_config("mnist_holdout", budget="smoke", overrides=["data.holdout=[1]"])
    ae = build_model(load_config("mnist_holdout", budget="smoke", overrides=["model.kind=ae"]))
    kept.mkdir()
    save_config(cfg, kept / "config.yml")
    ckpt.atomic_save({"format": ckpt.FORMAT, "model": ae.state_dict()}, kept / "ae.pt")
    _log(kept, "metrics_ae.jsonl", capped)                      # kept, but its phase hit the epoch cap
    model, why = mf.early_stopping_ae(pub, kept, patience=4)
    assert model is None and "did not end on early stopping" in why
    _log(kept, "metrics_ae.jsonl", early)
    model, why = mf.early_stopping_ae(pub, kept, patience=4)
    assert why == "h1es (6 epochs; its NAE phase still training)"
    assert model.weights_file == kept / "ae.pt"
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(model.energy(x), ae.eval().energy(x))
    (kept / "publish_decision_ema.json").write_text("{}")
    assert mf.early_stopping_ae(pub, kept, patience=4)[1] == "h1es (6 epochs; its NAE was not published)"
