"""The library pieces that notebook 01 writes out and checks: the NAE loss (with the
temperature term), and the 2-D diagnostics (curve error, expected energy, training log)."""
import json

import pytest
import torch

from nae.tutorial import plots2d as P
from nae.config import load_config
from nae.models import build_model


def test_nae_loss_temperature_term_is_the_likelihood_gradient_of_T():
    # notebook 01 writes the loss out; NAE.loss (what training uses) must agree, and its
    # temperature term must give log T the likelihood gradient -(mean E+ - mean E-)/T
    from nae.config import NAEPhaseConfig

    torch.manual_seed(0)
    model = build_model(load_config("toy2d", budget="smoke"))
    assert isinstance(model.log_temperature, torch.nn.Parameter)
    x_pos, x_neg = torch.randn(64, 2), 3 * torch.randn(64, 2)
    out = model.loss(x_pos, x_neg, NAEPhaseConfig(gamma=1.0))
    e_pos, e_neg = model.energy(x_pos), model.energy(x_neg)
    gap = e_pos.mean() - e_neg.mean()
    mine = gap + (e_neg ** 2).mean() + gap.detach() / model.T
    assert torch.allclose(out["loss"], mine)
    (g_t,) = torch.autograd.grad(out["loss"], model.log_temperature)
    assert g_t.item() == pytest.approx(-gap.item() / model.T.item(), rel=1e-5)


class _Quadratic(torch.nn.Module):
    kind, T = "nae", 1.0

    def energy(self, x):
        return 0.5 * (x ** 2).sum(1)


def test_expected_energy_of_a_gaussian():
    # p ~ exp(-|x|^2/2) on [-5, 5]^2: E = |x|^2/2 has mean 1 in two dimensions
    assert P.expected_energy(_Quadratic()) == pytest.approx(1.0, rel=0.01)


def test_curve_error_and_training_log(tmp_path):
    torch.manual_seed(0)
    model = build_model(load_config("toy2d", budget="smoke"))
    ce = P.curve_error(model, n=50)
    assert ce["error"].shape == (51,) and ce["latent_gap"].shape == (51,)
    assert (ce["error"] >= 0).all() and (ce["latent_gap"] <= 2 + 1e-5).all()  # unit vectors
    from nae.tutorial.notebook import training_log

    rows = [{"event": "step", "phase": "nae", "step": 10, "e_pos": 1.0, "e_neg": 2.0, "T": 0.5, "loss": -1.0},
            {"event": "validation", "phase": "nae", "step": 10},
            {"event": "step", "phase": "ae", "step": 5, "loss": 3.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    model.provenance = {"source": str(tmp_path)}
    log = training_log(model)
    assert log["step"].tolist() == [10.0] and log["e_neg"].tolist() == [2.0] and log["T"].tolist() == [0.5]


def test_the_ae_of_a_continued_model_does_not_claim_the_continuations_hardware():
    import json

    from nae.pretrained import read_manifest
    from nae.tutorial.notebook import obtain

    continued = [k for k, e in read_manifest().items() if f"train.init_ae={k}" in (e.get("overrides") or [])]
    assert continued, "no published model continued its own AE: pick another case"
    name = continued[0]
    ae, model = obtain(name, "full", which="ae"), obtain(name, "full")
    assert ae.provenance["hardware"].startswith("the AE of the model this one continued")
    assert ae.provenance["wall_time_s"] is None
    assert model.provenance["hardware"] == read_manifest()[name]["hardware"]
