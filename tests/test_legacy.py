"""Files written by earlier versions of the library keep working.

``tests/data/legacy/`` holds two run directories written (and paused mid-phase) by the
code of commit aba6e86, before the library was reorganised into one idea per module
(``tests/data/make_legacy_runs.py``): a toy 2-D NAE paused in its NAE phase (config
``train.nae.loss: v1``) and a tiny MNIST hold-out run paused in its AE phase
(``loss: v2``).  They must load and resume; every published model of ``pretrained/``
must load.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch

import nae
from nae.cli import main
from nae.run import load_run

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"
REPO = Path(__file__).resolve().parent.parent


def _copy(name, tmp_path):
    run = tmp_path / name
    shutil.copytree(LEGACY / name, run)
    return run


def _has_mnist():
    try:
        nae.data.load_dataset("MNISTHoldout", "val", n=1)
    except nae.errors.DataError:
        return False
    return True


@pytest.mark.parametrize("name, phase, step", [("toy2d_nae", "nae", 3), ("mnist_holdout_ae", "ae", 2)])
def test_a_legacy_run_loads_and_resumes(tmp_path, capsys, name, phase, step):
    if name.startswith("mnist") and not _has_mnist():
        pytest.skip("MNIST is not in the data root")
    run = _copy(name, tmp_path)
    model = load_run(run)  # the latest checkpoint of an unfinished run
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rc = main(["train", "--resume", "--out", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"resumed from {run / 'checkpoint.pt'} at phase {phase}, step {step}" in out
    assert (run / "model.pt").is_file()
    done = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert done[-1]["event"] == "end"


def test_every_published_model_loads():
    names = json.loads((REPO / "pretrained" / "manifest.json").read_text())
    assert names
    for name, entry in names.items():
        model = nae.load_pretrained(name, which="ae" if entry.get("stage") == "ae" else "final")
        assert model.pretrained_name == name
        x = torch.rand(2, *model.config.model.x_shape)
        assert torch.isfinite(model.energy(x)).all()
