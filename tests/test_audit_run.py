"""otdiv.audit.run: one audit from plain settings, the function behind ``otdiv audit``,
``otdiv demo``, the sweep's jobs and the benchmarks. Tiny settings: seconds in all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from otdiv.audit.data import holdout_split
from otdiv.audit.run import run_audit
from otdiv.audit.settings import AuditSettings, check_setting
from otdiv.cli import main

TINY = {"steps": 20, "hidden": (8, 8), "n": 60, "repeats": 1, "no_progress": True,
        "no_plots": True, "device": "cpu"}
TIMINGS = {"seconds", "w1_seconds"}


def _without_timings(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in TIMINGS | {"critic_file"}}
    out["audit"] = {k: v for k, v in report["audit"].items() if k not in TIMINGS}
    if "training" in out:
        out["training"] = {k: v for k, v in report["training"].items() if k != "seconds"}
    return out


def test_the_command_writes_what_run_audit_writes(tmp_path, capsys):
    """``otdiv audit`` only parses and prints: the same settings give the same report (and
    both leave torch's thread count as they found it)."""
    import torch

    before = torch.get_num_threads()
    rc = main(["audit", "--toy", "translate", "--steps", "20", "--hidden", "8,8", "--n", "60",
               "--repeats", "1", "--no-progress", "--no-plots", "--device", "cpu", "--out",
               str(tmp_path / "cli")])
    assert rc == 0
    run = run_audit(toy="translate", out=str(tmp_path / "py"), **TINY)
    assert torch.get_num_threads() == before
    cli = json.loads((tmp_path / "cli" / "report.json").read_text())
    py = json.loads(run.report.read_text())
    assert _without_timings(cli) == _without_timings(py)
    assert py["audit"]["estimate"] == run.audit.estimate
    assert py["verdict"]["message"] == run.verdict.message
    assert run.critic_file == tmp_path / "py" / "critic.pt" and run.critic_file.is_file()
    assert (tmp_path / "py" / "report.md").read_text().startswith("| problem |")
    assert capsys.readouterr().out.strip().endswith(run.verdict.message)


def test_own_data_train_on_one_half_audit_on_the_other(tmp_path, rng):
    x, y = rng.normal(size=(41, 2)), rng.normal(size=(30, 2)) + 1.0
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    run = run_audit(real=str(tmp_path / "x.npy"), fake=str(tmp_path / "y.npy"),
                    out=str(tmp_path / "o"), **TINY)
    held_real, held_fake = run.held
    assert (len(held_real), len(held_fake)) == (21, 15)  # n - floor(n / 2)
    assert (run.audit.n, run.audit.m) == (21, 15)
    # the held-out rows are rows of the data
    assert all(any(np.array_equal(h, r) for r in x) for h in held_real)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10])
def test_holdout_split_is_a_partition(n, rng):
    points = np.arange(n)[:, None] * np.ones((1, 3))
    train, held = holdout_split(points, np.random.default_rng(n))
    assert (len(train), len(held)) == (n // 2, n - n // 2)
    assert sorted(np.concatenate([train[:, 0], held[:, 0]])) == list(range(n))


def test_bad_settings_name_the_setting_as_the_caller_spells_it(tmp_path):
    out = tmp_path / "o"
    for options, name in [({"steps": 0}, "<steps>"), ({"hidden": "8,x"}, "<hidden>"),
                          ({"batch_size": 10**12}, "<batch_size>"),
                          ({"toy": None}, "<toy>"),
                          ({"save_critic": str(tmp_path)}, "<save_critic>")]:
        settings = {"toy": "translate", "out": str(out), **TINY, **options}
        with pytest.raises((TypeError, ValueError), match=name):
            run_audit(label=lambda k: f"<{k}>", **settings)
    assert not out.exists()  # refused before anything was written
    with pytest.raises(TypeError, match="unknown setting"):
        run_audit(toy="translate", stepz=3)


def test_the_audits_report_is_written_before_a_failing_lines_sweep(tmp_path, monkeypatch):
    # nothing computed is lost to a later error: report.md and report.json hold the audit
    import otdiv.audit.lines as lines

    def broken(*args, **kwargs):
        raise FloatingPointError("the sweep failed")

    monkeypatch.setattr(lines, "lines_sweep", broken)
    out = tmp_path / "o"
    with pytest.raises(FloatingPointError, match="sweep failed"):
        run_audit(toy="translate", out=str(out), sweep=True, **TINY)
    report = json.loads((out / "report.json").read_text())
    assert "audit" in report and "lines_sweep" not in report
    assert (out / "report.md").read_text().startswith("| problem |")
    assert report["verdict"]["message"] in (out / "report.md").read_text()


@pytest.mark.parametrize("key", ["theta", "thetas"])
def test_a_lines_offset_beyond_float32s_reach_is_refused_first(key, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ValueError, match=f"<{key}>.*float32"):
        run_audit(label=lambda k: f"<{k}>", toy="lines", out=str(out),
                  **{key: 1e308 if key == "theta" else (0.0, 1e308)}, **TINY)
    assert not out.exists()


def test_settings_are_normalised_once():
    s = AuditSettings(hidden="8, 8", thetas="-1,0.5", softplus_beta="none").checked()
    assert (s.hidden, s.thetas, s.softplus_beta) == ((8, 8), (-1.0, 0.5), None)
    assert s.checked() == s
    assert check_setting("softplus_beta", "30") == 30.0
    with pytest.raises(ValueError, match="flag"):
        check_setting("sweep", "yes")


def _weights(tmp_path, optimizer):
    import torch

    from otdiv.audit.checkpoint import load_critic

    run = run_audit(toy="translate", out=str(tmp_path / str(optimizer)), optimizer=optimizer,
                    **TINY)
    return torch.cat([p.detach().flatten()
                      for p in load_critic(str(run.critic_file)).parameters()])


def test_the_optimizer_setting_reaches_training(tmp_path):
    """``optimizer`` trains another critic (None is the recipe's: Muon for lp on torch >=
    2.9, else Adam; "rmsprop" is neither); a bad name is refused before anything is
    written."""
    import torch

    default = _weights(tmp_path, None)
    recipe = "muon" if hasattr(torch.optim, "Muon") else "adam"
    assert torch.equal(_weights(tmp_path, recipe), default)
    assert not torch.allclose(_weights(tmp_path, "rmsprop"), default)
    with pytest.raises(ValueError, match="<optimizer>"):
        run_audit(toy="translate", out=str(tmp_path / "sgd"), optimizer="sgd",
                  label=lambda k: f"<{k}>", **TINY)
    assert not (tmp_path / "sgd").exists()


def test_muon_setting_trains_with_muon_or_says_it_needs_a_newer_torch(tmp_path, monkeypatch,
                                                                       capsys):
    import torch

    if hasattr(torch.optim, "Muon"):  # torch >= 2.9
        assert not torch.allclose(_weights(tmp_path, "muon"), _weights(tmp_path, "adam"))
        monkeypatch.delattr(torch.optim, "Muon")
    capsys.readouterr()  # what the runs above printed
    rc = main(["audit", "--toy", "translate", "--optimizer", "muon", "--steps", "20",
               "--out", str(tmp_path / "old")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--optimizer='muon' needs torch.optim.Muon (torch >= 2.9)" in err
    assert not (tmp_path / "old").exists()
