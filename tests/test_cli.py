"""The command line end to end on the smoke budget, with MNIST from the data root."""
import json
import subprocess
import sys

import numpy as np
import pytest

from nae import data as D


def nae(*args, check=True, timeout=600):
    p = subprocess.run([sys.executable, "-m", "nae", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"nae {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    try:
        D.load_dataset("MNIST", "test", n=10)
    except D.DataError as e:
        pytest.skip(f"MNIST not found: {e}")
    run = tmp_path_factory.mktemp("cli") / "mnist"
    nae("train", "mnist_ood", "--budget", "smoke", "--out", run, "--quiet")
    return run


def test_train_writes_a_run_directory(mnist_run):
    for f in ("config.yml", "checkpoint.pt", "model.pt", "ae.pt", "metrics.jsonl"):
        assert (mnist_run / f).is_file(), f
    events = [json.loads(line)["event"] for line in (mnist_run / "metrics.jsonl").open()]
    assert "validation" in events and events[-1] in ("end", "checkpoint")


def test_evaluate_prints_table_and_json(mnist_run, tmp_path):
    out = tmp_path / "res.json"
    p = nae("evaluate", mnist_run, "--ood", "Constant,Noise,SVHN", "--n", "200", "--json", out)
    assert "AUROC" in p.stdout and "Constant" in p.stdout and "absent" in p.stdout  # SVHN is not here
    res = json.loads(out.read_text())
    assert res["in_distribution"] == "MNIST"
    assert set(res) >= {"auroc", "aupr_in", "aupr_out", "fpr95"}
    for name in ("Constant", "Noise"):
        assert 0.0 <= res["auroc"][name] <= 1.0
    assert res["auroc"]["SVHN"] is None and "SVHN" in res["absent"]


def test_evaluate_ae_baseline(mnist_run):
    p = nae("evaluate", mnist_run, "--which", "ae", "--ood", "Constant", "--n", "100")
    assert "Constant" in p.stdout


def test_sample_png_and_npy(mnist_run, tmp_path):
    nae("sample", mnist_run, "--n", "8", "--out", tmp_path / "s.npy", "--z-steps", "2", "--x-steps", "2")
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (8, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    nae("sample", mnist_run, "--n", "8", "--nrow", "4", "--out", tmp_path / "s.png", "--z-steps", "2", "--x-steps", "2")
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (3 * (4 * 30 + 2), 3 * (2 * 30 + 2))  # 84 px per digit


@pytest.mark.parametrize("args,needle", [
    (["evaluate", "/no/such/run"], "does not exist"),
    (["sample", "/no/such/run", "--out", "x.png"], "does not exist"),
    (["train", "no_such_config"], "not found"),
    (["train", "mnist_ood", "train.nae.lrr=1"], "unknown config key"),
    (["train", "--resume", "--out", "/no/such/run"], "cannot resume"),
])
def test_errors_are_one_line_without_traceback(args, needle):
    p = nae(*args, check=False)
    assert p.returncode == 2
    assert needle in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unknown_ood_set_is_an_error(mnist_run):
    """A name that is not registered is a mistake (exit 2); a registered set that is missing stays "absent"."""
    p = nae("evaluate", mnist_run, "--ood", "NoSuchSet", "--n", "50", check=False)
    assert p.returncode == 2 and "unknown data set 'NoSuchSet'" in p.stderr and "Traceback" not in p.stderr


def test_data_lists_sets():
    p = nae("data")
    for name in ("MNIST", "CIFAR10", "SVHN", "Omniglot", "Constant"):
        assert name in p.stdout
    assert p.stdout.startswith("data root: ") and "<root>" not in p.stdout


def test_train_and_evaluate_on_user_data(tmp_path):
    rng = np.random.default_rng(0)
    x = np.zeros((96, 28, 28), np.uint8)
    for i in range(96):  # bright squares at random places: a toy data set of one's own
        r, c = rng.integers(0, 20, 2)
        x[i, r:r + 8, c:c + 8] = 255
    np.savez(tmp_path / "mine.npz", x=x)
    run = tmp_path / "run"
    nae("train", "mnist_ood", "--budget", "smoke", "--data", f"npz:{tmp_path / 'mine.npz'}", "--out", run, "--quiet",
        "train.nae.max_iters=1", "data.ood_val=null", "data.ood_target=null")
    p = nae("evaluate", run, "--ood", "Constant", "--n", "50")
    assert "npz:" in p.stdout and "Constant" in p.stdout


def test_holdout_run_evaluates_heldout_digits(tmp_path):
    run = tmp_path / "ho"
    nae("train", "mnist_holdout", "--budget", "smoke", "--out", run, "--quiet", "data.holdout=[1]",
        "train.nae.max_iters=1")
    out = tmp_path / "ho.json"
    p = nae("evaluate", run, "--ood", "heldout", "--n", "300", "--json", out)
    res = json.loads(out.read_text())
    assert res["in_distribution"] == "MNISTHoldout" and "heldout" in p.stdout
    assert res["n"]["heldout"] == 300 and res["n_in"] == 300
    assert 0.0 <= res["auroc"]["heldout"] <= 1.0


def test_resume_extends_the_schedule_only(tmp_path):
    run = tmp_path / "r"
    nae("train", "toy2d", "--budget", "smoke", "--out", run, "--quiet")
    p = nae("train", "--resume", "--out", run, "train.nae.gamma=2", check=False)
    assert p.returncode == 2 and "cannot change when a run is resumed" in p.stderr and "Traceback" not in p.stderr
    n_before = len((run / "metrics.jsonl").read_text().splitlines())
    p = nae("train", "--resume", "--out", run, "--quiet", "train.nae.max_iters=8")
    assert "run finished" in p.stdout
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()[n_before:]]
    assert events[0]["event"] == "reopened" and events[0]["from_step"] == 5 and events[0]["to_step"] == 8
    assert [e["step"] for e in events if e["event"] == "phase_end"] == [8]
