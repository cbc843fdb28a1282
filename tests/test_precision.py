"""train_critic(precision="bfloat16"): the step's passes under autocast, the critic float32,
the estimate as good as float32's against a closed-form W1; the option checked and carried
through otdiv audit, sweep grids and otdiv benchmark-critics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from otdiv.audit import make_toy, train_critic
from otdiv.audit.grid import load_grid
from otdiv.audit.settings import check_setting
from otdiv.cli.benchmark_critics import main as benchmark_main


class _DtypeSpy(torch.nn.Module):
    """A Softplus MLP that records the dtype of its first layer's output, by mode."""

    def __init__(self, dim: int = 2):
        super().__init__()
        self.first = torch.nn.Linear(dim, 16)
        self.rest = torch.nn.Sequential(torch.nn.Softplus(10.0), torch.nn.Linear(16, 1))
        self.seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}

    def forward(self, x):
        h = self.first(x)
        self.seen[self.training].add(h.dtype)
        return self.rest(h)


@pytest.mark.parametrize(("precision", "dtype"), [("float32", torch.float32),
                                                  ("bfloat16", torch.bfloat16)])
@pytest.mark.parametrize("constraint", ["lp", "gp", "clip", "spectral"])
def test_the_training_passes_run_in_the_precision_and_the_critic_stays_float32(
        precision, dtype, constraint):
    toy = make_toy("translate", d=2)
    spy = _DtypeSpy()
    before = [p.detach().clone() for p in spy.parameters()]
    out = train_critic(toy.sample_real, toy.sample_fake, constraint=constraint, steps=4,
                       batch_size=32, critic=spy, device="cpu", seed=0, progress=False,
                       precision=precision)
    assert spy.seen[True] == {dtype}            # every training pass
    assert spy.seen[False] == {torch.float32}   # the recorded estimates
    assert all(p.dtype == torch.float32 for p in spy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, spy.parameters(), strict=True))
    assert out.settings["precision"] == precision
    assert all(np.isfinite(out.history_estimate))


def test_a_bfloat16_critic_estimates_w1_as_a_float32_one():
    """Translation by t: W1 = ‖t‖ = 1 (closed form); the LP critic's estimate on its fixed
    evaluation set (2000 points a side, float32) overshoots by at most the penalty's slope
    1 + W1 / (2 λ) = 1.05, up to the evaluation's sampling error: the difference of two
    means of 2000 scores ≈ ⟨x, t/‖t‖⟩ of variance 1, standard deviation √(2/2000) = 0.032,
    so 0.13 is 4 of them (seeds 0-2 here: 0.93-1.00 with either precision)."""
    toy = make_toy("translate", d=8)
    w1 = toy.w1
    estimates = {}
    for precision in ("float32", "bfloat16"):
        out = train_critic(toy.sample_real, toy.sample_fake, constraint="lp", steps=300,
                           batch_size=256, hidden=(64, 64), softplus_beta=30.0,
                           optimizer="muon" if hasattr(torch.optim, "Muon") else "adam",
                           lr=2e-3, schedule="cosine", device="cpu", seed=0,
                           progress=False, precision=precision)
        estimates[precision] = out.estimate
    for est in estimates.values():
        assert w1 - 0.13 <= est <= 1.05 * w1 + 0.13, estimates


@pytest.mark.parametrize("precision", ["float16", "bf16", None, 16, "BFLOAT16"])
def test_a_precision_torch_cannot_train_in_is_refused_naming_it(precision):
    toy = make_toy("translate", d=2)
    with pytest.raises(ValueError, match="precision"):
        train_critic(toy.sample_real, toy.sample_fake, steps=1, device="cpu",
                     precision=precision)
    with pytest.raises(ValueError, match="precision"):
        check_setting("precision", precision)


def test_a_sweep_grid_takes_precision_as_a_key():
    jobs = load_grid({"grid": {"precision": ["float32", "bfloat16"]},
                      "fixed": {"toy": "translate", "steps": 2}})
    assert [job.args["precision"] for job in jobs] == ["float32", "bfloat16"]
    with pytest.raises(ValueError, match="precision"):
        load_grid({"grid": {"precision": ["half"]}, "fixed": {"toy": "translate"}})


def test_benchmark_rows_record_the_precision_and_resume_only_their_own(capsys, tmp_path):
    """A bfloat16 row says so in its settings; a float32 run on the same file trains its own
    row (and records no precision, as rows written before the option did), and each run
    again reads its own row back."""
    out = tmp_path / "rows.json"
    common = ["--problems", "translate:2", "--steps", "3", "--n", "40", "--n-estimate",
              "60", "--hidden", "8", "--device", "cpu", "--json", str(out)]
    assert benchmark_main([*common, "--precision", "bfloat16"]) == 0
    assert benchmark_main(common) == 0
    rows = json.loads(out.read_text())
    assert [r["settings"].get("precision") for r in rows] == ["bfloat16", None]
    assert [r.get("precision") for r in rows] == ["bfloat16", None]
    capsys.readouterr()
    assert benchmark_main([*common, "--precision", "bfloat16"]) == 0
    assert benchmark_main(common) == 0
    assert capsys.readouterr().err.count("1 of 1 rows read back") == 2


def test_benchmark_precision_with_saved_critics_is_a_one_line_error(capsys, tmp_path):
    code = benchmark_main(["--problems", "translate:2", "--load-critics", str(tmp_path),
                           "--precision", "bfloat16", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--precision" in err and len(err.splitlines()) == 1


def test_bfloat16_refuses_a_critic_autocast_would_leave_alone():
    """autocast runs float32 passes in bfloat16 and leaves float64 ones as they are: a
    float64 critic would train in float64 while its settings said bfloat16."""
    toy = make_toy("translate", d=2)
    critic = torch.nn.Linear(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"precision.*float64"):
        train_critic(toy.sample_real, toy.sample_fake, steps=2, critic=critic, device="cpu",
                     precision="bfloat16")


def _spy_precision(monkeypatch, module) -> list[str]:
    """Record the precision every train_critic call of ``module`` receives."""
    seen: list[str] = []
    real = module.train_critic

    def spy(*a, **k):
        seen.append(k.get("precision", "float32"))
        return real(*a, **k)

    monkeypatch.setattr(module, "train_critic", spy)
    return seen


def test_otdiv_audit_trains_in_the_precision_it_is_given(monkeypatch, tmp_path):
    import otdiv.audit.train as train_module
    from otdiv.audit.run import run_audit

    seen = _spy_precision(monkeypatch, train_module)
    run = run_audit(toy="translate", steps=3, batch_size=16, hidden="8", n=40, repeats=1,
                    device="cpu", out=str(tmp_path / "r"), no_progress=True, no_plots=True,
                    precision="bfloat16")
    assert seen == ["bfloat16"]
    report = json.loads(run.report.read_text())
    assert report["training"]["settings"]["precision"] == "bfloat16"


def test_otdiv_audit_refuses_precision_for_a_saved_critic_before_any_work(tmp_path):
    from otdiv.audit.run import run_audit

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="precision applies to training"):
        run_audit(real=str(x), fake=str(x), critic=str(tmp_path / "c.pt"), device="cpu",
                  out=str(tmp_path / "r"), precision="bfloat16")
    assert not (tmp_path / "r").exists()


def test_benchmark_rows_train_in_their_precision_and_save_critics_apart(monkeypatch,
                                                                         tmp_path):
    import otdiv.audit

    seen = _spy_precision(monkeypatch, otdiv.audit)
    common = ["--problems", "translate:2", "--steps", "3", "--n", "40", "--n-estimate",
              "60", "--hidden", "8", "--device", "cpu", "--json", str(tmp_path / "r.json"),
              "--save-critics", str(tmp_path / "critics")]
    assert benchmark_main([*common, "--precision", "bfloat16"]) == 0
    assert benchmark_main(common) == 0
    assert seen == ["bfloat16", "float32"]
    assert sorted(p.name for p in (tmp_path / "critics").iterdir()) == [
        "translate_d2_lp_s0.pt", "translate_d2_lp_s0_bfloat16.pt"]
    seen.clear()  # both read back: each row's critic is still there
    assert benchmark_main([*common, "--precision", "bfloat16"]) == 0
    assert benchmark_main(common) == 0
    assert seen == []
