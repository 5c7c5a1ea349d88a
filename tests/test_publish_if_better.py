"""scripts/publish_if_better.py: which checkpoint a stopped run is finished at, and the refusals."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import publish_if_better as pib  # noqa: E402
from nae.config import load_config, save_config  # noqa: E402
from nae.evaluate import watched_sets  # noqa: E402


def _run(tmp_path, events):
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return tmp_path


def test_last_checkpoint_step_is_the_last_checkpoint_event(tmp_path):
    run = _run(tmp_path, [{"event": "checkpoint", "phase": "ae", "step": 900},
                          {"event": "checkpoint", "phase": "nae", "step": 150},
                          {"event": "step", "phase": "nae", "step": 160},
                          {"event": "interrupted", "phase": "nae", "step": 150}])
    assert pib.last_checkpoint_step(run) == ("nae", 150)


def test_a_run_stopped_in_its_ae_phase_is_not_finished(tmp_path):
    run = _run(tmp_path, [{"event": "checkpoint", "phase": "ae", "step": 900}])
    with pytest.raises(SystemExit, match="continue it first"):
        pib.finish(run)


def test_a_run_without_checkpoint_is_refused(tmp_path):
    run = _run(tmp_path, [{"event": "start", "phase": "ae", "step": 0}])
    with pytest.raises(SystemExit, match="no checkpoint"):
        pib.finish(run)


def test_mean_auroc_skips_absent_sets():
    assert pib.mean_auroc({"a": 0.8, "b": None, "c": 1.0}) == pytest.approx(0.9)


def test_the_watched_sets_decide_without_repeats():
    from nae.config import load_config

    cfg = load_config("mnist_holdout")
    assert watched_sets(cfg) == ["Constant", "heldout"]
    cfg.data.ood_target = "Constant"
    assert watched_sets(cfg) == ["Constant"]


def test_a_run_is_better_only_with_a_higher_mean_validation_auroc():
    assert pib.decide({"Constant": 1.0, "heldout": 0.85}, {"Constant": 1.0, "heldout": 0.84})
    assert not pib.decide({"Constant": 1.0, "heldout": 0.84}, {"Constant": 1.0, "heldout": 0.84})
    assert not pib.decide({"heldout": 0.80}, {"heldout": 0.81})


def test_nae_iterations_is_the_last_nae_step_also_after_the_run_finished(tmp_path):
    run = _run(tmp_path, [{"event": "step", "phase": "ae", "step": 900},
                          {"event": "step", "phase": "nae", "step": 500},
                          {"event": "phase_end", "phase": "nae", "step": 502},
                          {"event": "checkpoint", "phase": "finished", "step": 0}])
    assert pib.nae_iterations(run) == 502


class _Published:
    def __init__(self, metrics, nae_iterations=None, max_iters=7):
        from types import SimpleNamespace

        self.manifest = {"metrics": metrics, "nae_iterations": nae_iterations}
        self.config = SimpleNamespace(train=SimpleNamespace(nae=SimpleNamespace(max_iters=max_iters)))


def test_the_published_test_numbers_come_from_the_manifest_when_they_match_the_recipe():
    from types import SimpleNamespace

    recipe = SimpleNamespace(ood=["heldout"], eval_n=2000)
    m = {"auroc": {"heldout": 0.86}, "n_in": 2000}
    assert pib.published_test(_Published(m), recipe) == {"auroc": {"heldout": 0.86}, "n_in": 2000}
    assert pib.published_test(_Published({**m, "eval_n": 1000}), recipe) is None  # other test size
    assert pib.published_test(_Published(m), SimpleNamespace(ood=["heldout", "Noise"], eval_n=2000)) is None
    assert pib.published_test(_Published({}), recipe) is None  # nothing measured: score it


def test_published_iterations_count_once(tmp_path, monkeypatch):
    import nae.pretrained as pretrained

    monkeypatch.setattr(pretrained, "extends_published", lambda run, name: True)
    assert pib.published_iterations(_Published({}, nae_iterations=80), tmp_path, "x") == 0  # resumed: in its log
    monkeypatch.setattr(pretrained, "extends_published", lambda run, name: False)
    monkeypatch.setattr(pretrained, "continues_published", lambda run, name: True)
    assert pib.published_iterations(_Published({}, nae_iterations=80), tmp_path, "x") == 80  # continued
    assert pib.published_iterations(_Published({}), tmp_path, "x") == 7  # no count published: its schedule
    monkeypatch.setattr(pretrained, "continues_published", lambda run, name: False)
    assert pib.published_iterations(_Published({}, nae_iterations=80), tmp_path, "x") == 0  # a new run


def test_a_run_continues_the_published_model_only_when_it_starts_from_its_weights(tmp_path, monkeypatch):
    import nae.pretrained as pretrained

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    (tmp_path / "pretrained" / "m").mkdir(parents=True)
    (tmp_path / "pretrained" / "m" / "model.pt").write_bytes(b"x")
    for init, expected in ((["train.init_ae=m", "train.init_nae=m"], True), ([], False)):
        run = tmp_path / f"run{len(init)}"
        run.mkdir()
        cfg = load_config("mnist_holdout", budget="smoke", overrides=init)
        save_config(cfg, run / "config.yml")
        assert pretrained.continues_published(run, "m") is expected


def test_the_ae_is_scored_again_only_when_it_changed():
    import make_pretrained as mp

    from nae.metrics import FPR95_DEFINITION

    old = {"files": {"ae.pt": "aaa"}, "metrics": {"auroc": {"Noise": 0.9}, "ae_auroc": {"Noise": 0.5, "X": 0.4},
                                                  "ae_fpr95": {"Noise": 0.7, "X": 0.8}, "n_in": 2000,
                                                  "fpr95_definition": FPR95_DEFINITION}}
    kept = mp.same_ae_metrics(old, {"files": {"ae.pt": "aaa"}}, ["Noise", "X"], 2000)
    assert kept == {"ae_auroc": {"Noise": 0.5, "X": 0.4}, "ae_fpr95": {"Noise": 0.7, "X": 0.8}, "n_in": 2000,
                    "eval_n": 2000}  # the NAE's own metrics are not carried over
    older = {**old, "metrics": {k: v for k, v in old["metrics"].items() if k != "fpr95_definition"}}
    assert mp.same_ae_metrics(older, {"files": {"ae.pt": "aaa"}}, ["Noise", "X"], 2000) == {}  # FPR@95 of old
    assert mp.same_ae_metrics(old, {"files": {"ae.pt": "bbb"}}, ["Noise"], 2000) == {}  # another AE
    assert mp.same_ae_metrics(old, {"files": {"ae.pt": "aaa"}}, ["Noise", "SVHN"], 2000) == {}  # a set not scored
    assert mp.same_ae_metrics(old, {"files": {"ae.pt": "aaa"}}, ["Noise"], 1000) == {}  # another test size
    assert mp.same_ae_metrics({}, {"files": {"ae.pt": "aaa"}}, ["Noise"], 2000) == {}  # nothing published before


def test_a_published_run_records_its_own_overrides_not_the_recipes(tmp_path, monkeypatch):
    import make_pretrained as mp

    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config("mnist_holdout", budget="full", overrides=["data.holdout=[8]", "train.nae.ema=0.99",
                                                                 "train.ae.epochs=35"])
    save_config(cfg, run / "config.yml")
    (run / "metrics.jsonl").write_text('{"event": "end", "phase": "nae", "step": 5, "wall_s": 12.0}\n')
    seen = {}
    monkeypatch.setattr(mp, "publish_run", lambda run_dir, name, info, **k: seen.update(info) or {})
    mp.main(["mnist_holdout_8", "--publish", str(run), "--description", "digit 8, longer AE, EMA"])
    assert seen["description"] == "digit 8, longer AE, EMA"
    assert sorted(seen["overrides"]) == ["data.holdout=[8]", "train.ae.epochs=35", "train.nae.ema=0.99"]
    assert seen["wall_time_s"] == 12.0


def test_publishing_needs_a_description_of_the_new_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pib.main([str(tmp_path), "mnist_holdout_8", "--which", "ema"])  # refused before anything is finished
    assert "--description is needed" in capsys.readouterr().err


def _saved_run(tmp_path, overrides):
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config("mnist_holdout", budget="full", overrides=overrides), run / "config.yml")
    (run / "metrics.jsonl").write_text('{"event": "end", "phase": "nae", "step": 5, "wall_s": 12.0}\n')
    return run


def test_make_pretrained_needs_a_description_for_a_run_the_recipe_did_not_make(tmp_path, monkeypatch, capsys):
    import make_pretrained as mp
    from nae.tutorial.recipes import RECIPES

    r = RECIPES["mnist_holdout_8"]
    run = _saved_run(tmp_path, list(r.overrides) + list(r.full) + ["train.nae.lr=2e-5"])
    monkeypatch.setattr(mp, "publish_run", lambda *a, **k: pytest.fail("published under the recipe's description"))
    with pytest.raises(SystemExit):
        mp.main(["mnist_holdout_8", "--publish", str(run)])
    err = capsys.readouterr().err
    assert "--description is needed" in err and "train.nae.lr" in err


def test_the_recipes_own_run_is_published_with_the_recipes_description(tmp_path, monkeypatch):
    import make_pretrained as mp
    from nae.tutorial.recipes import RECIPES

    r = RECIPES["mnist_holdout_8"]
    run = _saved_run(tmp_path, list(r.overrides) + list(r.full) + ["train.ckpt_every=7"])  # interval only
    seen = {}
    monkeypatch.setattr(mp, "publish_run", lambda run_dir, name, info, **k: seen.update(info) or {})
    mp.main(["mnist_holdout_8", "--publish", str(run)])
    assert seen["description"] == r.description


def test_ties_keep_the_run_only_when_asked():
    both_saturate = {"Constant": 1.0, "Noise": 1.0}
    assert not pib.decide(both_saturate, dict(both_saturate))
    assert pib.decide(both_saturate, dict(both_saturate), ties=True)
    assert not pib.decide({"Constant": 0.99, "Noise": 1.0}, both_saturate, ties=True)


def test_a_continuation_keeps_the_earlier_entrys_note_hardware_and_wall_time(tmp_path, monkeypatch):
    import make_pretrained as mp

    before = {"note": "stage: 80 iterations", "hardware": "NAE phase: Xeon AMX", "wall_time_s": 100.0}
    assert mp.continued_entry(before, {"note": "round 1", "hardware": "Zen 4", "wall_time_s": 12.0}) == \
        {"note": "stage: 80 iterations || round 1", "hardware": "NAE phase: Xeon AMX; Zen 4", "wall_time_s": 112.0}
    assert mp.continued_entry({}, {"note": "round 1", "hardware": "Zen 4", "wall_time_s": 12.0}) == \
        {"note": "round 1", "hardware": "Zen 4"}  # nothing before: the run's own (its wall time stays)

    run = _saved_run(tmp_path, ["data.holdout=[8]", "train.init_ae=mnist_holdout_8", "train.init_nae=mnist_holdout_8"])
    monkeypatch.setattr(mp, "read_manifest", lambda root=None: {"mnist_holdout_8": before})
    seen = {}
    monkeypatch.setattr(mp, "publish_run", lambda run_dir, name, info, **k: seen.update(info) or {})
    mp.main(["mnist_holdout_8", "--publish", str(run), "--description", "d", "--note", "round 1",
             "--hardware", "Zen 4", "--continues"])
    assert (seen["note"], seen["hardware"], seen["wall_time_s"]) == \
        ("stage: 80 iterations || round 1", "NAE phase: Xeon AMX; Zen 4", 112.0)
    seen.clear()
    mp.main(["mnist_holdout_8", "--publish", str(run), "--description", "d", "--note", "round 1",
             "--hardware", "Zen 4"])  # not a continuation: the run's own
    assert (seen["note"], seen["hardware"], seen["wall_time_s"]) == ("round 1", "Zen 4", 12.0)


def test_only_a_run_that_continued_the_published_weights_is_published_as_a_continuation(tmp_path, monkeypatch):
    import nae.pretrained as pretrained

    for cont, ext, expected in ((True, False, True), (True, True, False), (False, False, False)):
        monkeypatch.setattr(pretrained, "continues_published", lambda run, name, c=cont: c)
        monkeypatch.setattr(pretrained, "extends_published", lambda run, name, e=ext: e)
        assert pib.continued(tmp_path, "x") is expected
