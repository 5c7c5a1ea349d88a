"""scripts/rescore_manifest.py: the comparison, the refusals and what --write changes, with the
evaluation replaced by stored numbers (no model is loaded)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import rescore_manifest as rm  # noqa: E402
from nae.metrics import FPR95_DEFINITION  # noqa: E402
from nae.pretrained import write_manifest  # noqa: E402


def _entry(**metrics):
    return {"dir": "m", "files": {"model.pt": "0" * 64, "ae.pt": "1" * 64}, "stage": "final", "weights": "final",
            "description": "a model", "metrics": metrics}


@pytest.fixture
def root(tmp_path):
    manifest = {
        "img": _entry(auroc={"Noise": 1.0, "Omniglot": 0.99, "SVHN": None},
                      fpr95={"Noise": 0.0, "Omniglot": 0.052, "SVHN": None},
                      ae_auroc={"Noise": 1.0, "Omniglot": 0.90, "SVHN": None},
                      ae_fpr95={"Noise": 0.0, "Omniglot": 0.688, "SVHN": None},
                      absent=["SVHN"], n={"Noise": 1000, "Omniglot": 1000}, n_in=1000, eval_n=1000),
        "old": _entry(auroc={"heldout": 0.99}, fpr95={"heldout": 0.0115},
                      ae_auroc={"heldout": 0.08}, ae_fpr95={"heldout": 0.9985}, absent=[], n_in=2000),
        "toy": {"dir": "toy", "files": {"model.pt": "2" * 64}, "metrics": {}},
    }
    write_manifest(manifest, tmp_path)
    return tmp_path


def _fake(remeasured, calls=None):
    """A stand-in for :func:`rm.measure`: ``remeasured[(name, which)]`` holds the AUROC and FPR@95
    per set (None: the set cannot be loaded here)."""
    def measure(name, which, sets, n, root=None):
        if calls is not None:
            calls.append((name, which, list(sets), n))
        got = remeasured[(name, which)]
        res = {"n_in": n, "auroc": {}, "fpr95": {}, "n": {}, "absent": {}}
        for s in sets:
            if got.get(s) is None:
                res["absent"][s] = "data set not found"
                res["auroc"][s] = res["fpr95"][s] = None
            else:
                res["auroc"][s], res["fpr95"][s] = got[s]
                res["n"][s] = n if s != "heldout" else 1135
        return res
    return measure


SAME = {("img", "final"): {"Noise": (1.0, 0.0), "Omniglot": (0.9905, 0.054)},
        ("img", "ae"): {"Noise": (1.0, 0.0), "Omniglot": (0.90, 0.232)},
        ("old", "final"): {"heldout": (0.99, 0.0018)},
        ("old", "ae"): {"heldout": (0.08, 0.9982)}}


def test_a_dry_run_prints_the_comparison_and_writes_nothing(root, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(rm, "measure", _fake(SAME, calls))
    before = (root / "manifest.json").read_bytes()
    assert rm.main(["img", "old", "toy"], root=root) == 0
    out = capsys.readouterr().out
    assert "0.0520" in out and "0.0540" in out and "0.6880" in out and "0.2320" in out and "nothing written" in out
    assert "toy: no image metrics" in out
    assert (root / "manifest.json").read_bytes() == before
    # the sets measured when published, absent ones left out; eval_n, else n_in (older entries)
    assert calls == [("img", "final", ["Noise", "Omniglot"], 1000), ("img", "ae", ["Noise", "Omniglot"], 1000),
                     ("old", "final", ["heldout"], 2000), ("old", "ae", ["heldout"], 2000)]


def test_write_changes_only_the_fpr95_values(root, monkeypatch):
    monkeypatch.setattr(rm, "measure", _fake(SAME))
    before = json.loads((root / "manifest.json").read_text())
    assert rm.main(["img", "old", "--write"], root=root) == 0
    text = (root / "manifest.json").read_text()
    after = json.loads(text)
    assert text == json.dumps(after, indent=2, sort_keys=True) + "\n"  # the file's own format
    assert not (root / "manifest.json.tmp").exists()
    assert after["toy"] == before["toy"]
    m = after["img"]["metrics"]
    assert m["fpr95"] == {"Noise": 0.0, "Omniglot": 0.054, "SVHN": None}
    assert m["ae_fpr95"] == {"Noise": 0.0, "Omniglot": 0.232, "SVHN": None}
    assert m["fpr95_definition"] == FPR95_DEFINITION and "rescore_manifest" in m["fpr95_rescored"]
    assert after["old"]["metrics"]["fpr95"] == {"heldout": 0.0018}
    for name in ("img", "old"):  # the stored AUROCs stay (the re-measured ones agree within 2e-3)
        rest = {k: v for k, v in after[name]["metrics"].items()
                if k not in ("fpr95", "ae_fpr95", "fpr95_definition", "fpr95_rescored")}
        assert rest == {k: v for k, v in before[name]["metrics"].items() if k not in ("fpr95", "ae_fpr95")}
        assert {k: v for k, v in after[name].items() if k != "metrics"} == \
            {k: v for k, v in before[name].items() if k != "metrics"}


def test_another_auroc_is_refused_and_nothing_is_written(root, monkeypatch, capsys):
    off = {**SAME, ("old", "ae"): {"heldout": (0.0825, 0.99)}}  # 0.0025 from the stored 0.08
    monkeypatch.setattr(rm, "measure", _fake(off))
    before = (root / "manifest.json").read_bytes()
    assert rm.main(["img", "old", "--write"], root=root) == 1  # img agrees, but nothing is written
    err = capsys.readouterr().err
    assert "refused" in err and "old AE heldout: AUROC 0.0825 now, 0.0800 stored" in err
    assert (root / "manifest.json").read_bytes() == before


def test_a_set_missing_here_is_refused(root, monkeypatch, capsys):
    missing = {**SAME, ("img", "final"): {"Noise": (1.0, 0.0), "Omniglot": None}}
    monkeypatch.setattr(rm, "measure", _fake(missing))
    before = (root / "manifest.json").read_bytes()
    assert rm.main(["img", "--write"], root=root) == 1
    assert "img NAE Omniglot: cannot be scored on this machine" in capsys.readouterr().err
    assert (root / "manifest.json").read_bytes() == before


def test_another_number_of_images_is_refused(root, monkeypatch, capsys):
    fake = _fake(SAME)

    def fewer(name, which, sets, n, root=None):
        res = fake(name, which, sets, n, root)
        res["n"]["Noise"] = 500
        return res
    monkeypatch.setattr(rm, "measure", fewer)
    assert rm.main(["img"], root=root) == 1
    assert "img NAE Noise: 500 test images now, 1000 when published" in capsys.readouterr().err


def test_within_the_tolerance_is_accepted(root, monkeypatch):
    close = {**SAME, ("old", "final"): {"heldout": (0.9915, 0.002)}}  # 0.0015 from the stored 0.99
    monkeypatch.setattr(rm, "measure", _fake(close))
    assert rm.main(["old", "--write"], root=root) == 0
    assert json.loads((root / "manifest.json").read_text())["old"]["metrics"]["fpr95"] == {"heldout": 0.002}


def test_an_unknown_name_is_a_usage_error(root):
    with pytest.raises(SystemExit) as e:
        rm.main(["nosuch"], root=root)
    assert e.value.code == 2


def test_an_entry_published_meanwhile_is_not_overwritten(root, monkeypatch):
    monkeypatch.setattr(rm, "measure", _fake(SAME))
    manifest = json.loads((root / "manifest.json").read_text())
    result = rm.rescore("img", manifest["img"], root)
    write_manifest({**manifest, "img": {**manifest["img"], "date": "later"}}, root)  # a publish in between
    before = (root / "manifest.json").read_bytes()
    with pytest.raises(SystemExit, match="changed while they were measured"):
        rm.write({"img": manifest["img"]}, {"img": result["metrics"]}, root)
    assert (root / "manifest.json").read_bytes() == before


def test_a_manifest_in_another_format_is_not_reformatted(root, monkeypatch):
    monkeypatch.setattr(rm, "measure", _fake(SAME))
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps(manifest, indent=4))
    before = (root / "manifest.json").read_bytes()
    with pytest.raises(SystemExit, match="not in the format"):
        rm.main(["img", "--write"], root=root)
    assert (root / "manifest.json").read_bytes() == before
