"""nae.image_chapter: the shared bookkeeping of the CIFAR-10 and CelebA-64 chapters."""
import json

import pytest

import nae.pretrained as P
from nae.tutorial.image_chapter import NOT_TRAINED, ORIGINAL_AUROC, ImageChapter


def test_auroc_table_says_not_trained_and_absent_and_keeps_the_original_numbers():
    ch = ImageChapter("cifar10_ood_cpu", "smoke")
    ae_result = {"n_in": 64, "auroc": {n: 0.5 for n in ch.ood if n != "SVHN"}, "absent": ["SVHN"]}
    md = ch.auroc_markdown({"AE": ae_result})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.splitlines() if line.startswith("| ") and not line.startswith("| outlier")}
    assert set(rows) == set(ch.ood)                       # no set dropped
    assert rows["SVHN"][:2] == ["absent", NOT_TRAINED]    # absent here; the NAE is not trained
    assert rows["ConstantGray"] == ["0.500", NOT_TRAINED, f"{ORIGINAL_AUROC['cifar10_ood']['ConstantGray']:.4f}", "–"]
    assert rows["Constant"][2] == "–"                     # the original published no number for it
    assert "n = 64" in md


def test_the_target_column_says_where_the_nae_meets_the_chapters_target():
    cifar = ImageChapter("cifar10_ood_cpu", "smoke")
    res = {"AE": {"n_in": 64, "auroc": {"ConstantGray": 0.0, "Noise": 1.0, "Constant": 0.1}, "absent": ["SVHN"]},
           "NAE": {"auroc": {"ConstantGray": 0.926, "Noise": 1.0, "Constant": 0.93}, "absent": ["SVHN"]}}
    assert cifar.target("ConstantGray", res) == "missed by 0.037"   # the original's 0.9632
    assert cifar.target("Noise", res) == "met"                      # 1.0 against the original's 1.0
    assert cifar.target("Constant", res) == "–"                     # no original number
    assert cifar.target("SVHN", res) == "–"                         # absent here
    assert "| target: NAE ≥ original |" in cifar.auroc_markdown(res)
    celeba = ImageChapter("celeba64_ood_cpu", "smoke")                 # no original numbers: above the AE
    res = {"AE": {"n_in": 64, "auroc": {"ConstantGray": 0.03, "Noise": 1.0, "CIFAR10": 0.9}},
           "NAE": {"auroc": {"ConstantGray": 0.48, "Noise": 1.0, "CIFAR10": 0.86}}}
    assert [celeba.target(n, res) for n in ("ConstantGray", "Noise", "CIFAR10")] == ["met", "tie", "missed by 0.040"]
    assert celeba.target("ConstantGray", {"AE": res["AE"]}) == "–"   # no NAE yet
    assert "| target: NAE > AE |" in celeba.auroc_markdown(res)


def test_stage_reads_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "PRETRAINED_DIR", tmp_path)
    ch = ImageChapter("celeba64_ood_cpu", "full")
    assert ch.stage() is None and ch.models() == (None, None)
    (tmp_path / "manifest.json").write_text(json.dumps({"celeba64_ood_cpu": {"files": {}, "stage": "ae"}}))
    assert ch.stage() == "ae"


def test_stored_metrics_stand_in_for_scoring_only_when_measured_on_the_same_images(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "PRETRAINED_DIR", tmp_path)
    metrics = {"ae_auroc": {"CelebA64Gray": 0.61, "ConstantGray": 0.2, "CIFAR10": 0.7, "Noise": 1.0},
               "ae_fpr95": {"CelebA64Gray": 0.9}, "n_in": 2000, "eval_n": 2000, "absent": [],
               "n": {"CelebA64Gray": 2000, "ConstantGray": 2000, "CIFAR10": 2000, "Noise": 2000}}
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"celeba64_ood_cpu": {"files": {}, "stage": "ae", "date": "2026-11-30", "metrics": metrics}}))
    ch = ImageChapter("celeba64_ood_cpu", "full")
    got = ch.stored_results(n=2000)
    assert set(got) == {"AE"}                     # a milestone: the AE only, no NAE numbers
    assert got["AE"]["stored"] and got["AE"]["auroc"]["ConstantGray"] == 0.2
    assert ch.stored_results(n=None) == {}        # measured on another number of images: score now
    assert ch.stored_results(n=1000) == {}
    old = {k: v for k, v in metrics.items() if k != "eval_n"}  # an entry from before eval_n: its n_in
    (tmp_path / "manifest.json").write_text(json.dumps({"celeba64_ood_cpu": {"files": {}, "stage": "ae", "metrics": old}}))
    assert set(ch.stored_results(n=2000)) == {"AE"} and ch.stored_results(n=1000) == {}
    short = {**metrics, "ae_auroc": {"CelebA64Gray": 0.61}}      # a set not measured then: score now
    (tmp_path / "manifest.json").write_text(json.dumps({"celeba64_ood_cpu": {"files": {}, "stage": "ae", "metrics": short}}))
    assert ch.stored_results(n=2000) == {}
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"celeba64_ood_cpu": {"files": {}, "stage": "ae", "date": "2026-11-30", "metrics": metrics}}))
    assert ImageChapter("celeba64_ood_cpu", "smoke").stored_results(n=2000) == {}
    assert ImageChapter("celeba64_ood_cpu", "full", retrain=True).stored_results(n=2000) == {}
    # a model without stored metrics is scored; one with them is not touched
    calls = []
    monkeypatch.setattr("nae.evaluate.evaluate_model",
                        lambda m, cfg, ood, n=None, precision="auto": calls.append((m, precision)) or {"n_in": 1})
    res = ch.evaluate({"AE": "ae-model", "NAE": "nae-model"}, n=2000, stored=True)
    assert calls == [("nae-model", "fp32")] and res["AE"] == got["AE"] and res["NAE"] == {"n_in": 1}  # fp32: as stored
    md = ch.auroc_markdown({"AE": got["AE"]})
    assert "| ConstantGray | 0.200 | not trained yet |" in md
    assert "measured when published (2026-11-30)" in md and "outlier sets: n = 2000 each" in md


@pytest.mark.parametrize("recipe", ["cifar10_ood_cpu", "celeba64_ood_cpu"])
def test_compute_rows_multiply_out_both_schedules(recipe):
    ch = ImageChapter(recipe, "smoke")
    rows = ch.compute_rows(precisions=("fp32",), reps=1)
    assert set(rows) == {"original, fp32", "ours, fp32"}
    orig = rows["original, fp32"]
    assert orig["hours"] == pytest.approx(orig["ae_hours"] + orig["nae_hours"]) and orig["hours"] > 0
    assert rows["ours, fp32"]["ae_steps"] < orig["ae_steps"]
    assert "| original, fp32 |" in ch.compute_markdown(rows)


def test_the_full_budget_uses_the_stored_timings_and_says_where_they_come_from():
    ch = ImageChapter("cifar10_ood_gpu", "full")
    saved = ch.stored_costs()[0]   # cost_cifar10_ood.json, part of the repository
    rows = ch.compute_rows(precisions=("fp32",))   # no step is timed: the stored rows are used
    stored = next(r for r in saved["rows"] if r["precision"] == "fp32" and r["n_neg"] == 128)
    assert rows["original, fp32"]["ae_step_s"] == stored["ae_step_s"]
    # the published schedule: 15 AE epochs over 45,000 images, 84 NAE iterations
    assert rows["ours, fp32"]["ae_steps"] == 15 * 352 and rows["ours, fp32"]["nae_iters"] == 84
    md = ch.compute_markdown(rows)
    assert saved["hardware"] in md and "benchmarks/chapter_cost.py" in md


def test_default_precisions_time_bf16_live_only_where_it_is_native(monkeypatch):
    """Live timing skips emulated bf16 (minutes per row on an AVX2 CPU); stored rows keep both."""
    from nae import speed
    from nae import cost

    timed = []
    monkeypatch.setattr(cost, "measure", lambda c, prec, **kw: timed.append(prec) or
                        {"ae_step_s": 1.0, "z_pass_s": 1.0, "x_pass_s": 1.0, "loss_step_s": 1.0,
                         "batch": c.data.batch_size, "n_neg": c.data.batch_size, "precision": prec})
    ch = ImageChapter("cifar10_ood_cpu", "smoke")
    monkeypatch.setattr(speed, "cpu_bf16_native", lambda: False)
    assert {k.split(", ")[1] for k in ch.compute_rows()} == {"fp32"} and set(timed) == {"fp32"}
    monkeypatch.setattr(speed, "cpu_bf16_native", lambda: True)
    assert {k.split(", ")[1] for k in ch.compute_rows()} == {"fp32", "bf16"}
    full = ImageChapter("cifar10_ood_gpu", "full").compute_rows()   # stored: both, nothing timed
    assert {k.split(", ")[1] for k in full} == {"fp32", "bf16"}


@pytest.mark.parametrize("recipe", ["cifar10_ood_cpu", "celeba64_ood_cpu"])
def test_cpu_recipes_carry_their_levers(recipe):
    from nae.tutorial.recipes import get_recipe
    from nae.tutorial.recipes.cifar_celeba import CPU_LEVERS

    r = get_recipe(recipe)
    assert set(CPU_LEVERS) <= set(r.full) and any(a.startswith("train.nae.max_iters=") for a in r.full)
    ch = ImageChapter(recipe, "full")
    assert ch.cfg.sampler.n_negatives == 32 and ch.cfg.train.nae.lr == 1e-4


def test_the_compute_tables_show_every_cpu_the_timings_were_stored_for(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    import nae.tutorial.image_chapter as ic

    ch = ImageChapter("cifar10_ood_gpu", "full")
    first = ch.stored_costs()[0]
    other = {**first, "hardware": "Some CPU with AMX", "rows": [{**r, "ae_step_s": r["ae_step_s"] / 4} for r in first["rows"]]}
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (res / "cost_cifar10_ood.json").write_text(json.dumps(first))
    (res / "cost_cifar10_ood_amx.json").write_text(json.dumps(other))
    (res / "cost_cifar10_oodx.json").write_text(json.dumps(other))   # another config's name: not read
    fake = tmp_path / "nae" / "tutorial" / "image_chapter.py"
    monkeypatch.setattr(ic, "__file__", str(fake))
    assert [s["hardware"] for s in ch.stored_costs()] == [first["hardware"], "Some CPU with AMX"]
    md = ch.compute_tables()
    assert md.count("| original, fp32 |") == 2 and first["hardware"] in md and "Some CPU with AMX" in md
    amx = ch.compute_rows(saved=ch.stored_costs()[1])
    assert amx["original, fp32"]["ae_step_s"] == pytest.approx(ch.compute_rows()["original, fp32"]["ae_step_s"] / 4)
