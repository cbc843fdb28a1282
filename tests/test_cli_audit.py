"""``otdiv audit`` and ``otdiv demo`` end to end: what is written, in which order, and the
one-line errors of the audit's own inputs. Tiny settings: every case runs in seconds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from otdiv.cli import main

TINY = ["--steps", "20", "--hidden", "8,8", "--n", "60", "--repeats", "1", "--no-progress"]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_audit_without_matplotlib_writes_everything_and_exits_0(tmp_path, capsys,
                                                                 monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    out, ckpt = tmp_path / "o", tmp_path / "c.pt"
    rc = main(["audit", "--toy", "translate", *TINY, "--out", str(out),
               "--save-critic", str(ckpt)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert _one_line(captured.err) == ("plots skipped: matplotlib is not installed "
                                       "(pip install -e '.[plot]' from the clone)")
    report = json.loads((out / "report.json").read_text())
    assert report["audit"]["closed_form_w1"] == 1.0 and report["training"]["steps"] == 20
    assert (out / "report.md").read_text().startswith("| problem |")
    assert "translate" in captured.out and "report:" in captured.out
    assert not list(out.glob("*.png"))
    from otdiv.audit import load_critic

    assert load_critic(str(ckpt))[0].in_features == 2


def test_a_failing_plot_keeps_the_trained_result(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import otdiv.audit.report as report

    def broken(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(report, "plot_history", broken)
    out = tmp_path / "o"
    rc = main(["audit", "--toy", "translate", *TINY, "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    line = _one_line(captured.err)
    assert "plotting failed" in line and "no canvas" in line
    assert json.loads((out / "report.json").read_text())["audit"]["n"] == 60
    assert (out / "critic.pt").is_file() and (out / "report.md").is_file()


def test_a_failing_audit_keeps_the_critic_and_the_training(tmp_path, capsys, monkeypatch):
    import otdiv.audit.critic as critic

    def broken(*args, **kwargs):
        raise ValueError("critic returned NaN or inf scores on the held-out samples")

    monkeypatch.setattr(critic, "audit_critic", broken)
    out = tmp_path / "o"
    rc = main(["audit", "--toy", "translate", *TINY, "--out", str(out)])
    assert rc == 2 and "NaN" in _one_line(capsys.readouterr().err)
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["steps"] == 20 and "audit" not in report
    assert (out / "critic.pt").is_file()


def test_demo_is_the_audit_parser_with_the_demo_arguments():
    from otdiv.cli import build_parser
    from otdiv.cli.audit import audit_parser, demo_argv

    demo = build_parser().parse_args(["demo", "--quick", "--out", "d", "--steps", "7"])
    audit = audit_parser().parse_args(demo_argv(demo))
    defaults = vars(audit_parser().parse_args([]))
    assert set(vars(audit)) == set(defaults)  # every audit option has a value in the demo
    assert (audit.toy, audit.steps, audit.out, audit.sweep) == ("8gaussians", 7, "d", True)
    assert audit.thetas == (0.0, 1.0)
    full = audit_parser().parse_args(demo_argv(build_parser().parse_args(["demo"])))
    assert full.thetas == (-1.0, -0.5, 0.0, 0.5, 1.0) and full.steps == 1200


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "otdiv audit --toy=8gaussians" in stdout and "parallel lines" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["problem"] == "8gaussians" and report["training"]["steps"] == 400
    assert report["lines_sweep"]["theta"] == [0.0, 1.0]
    assert report["audit"]["certified_lower"] <= report["audit"]["exact_w1"]
    assert (out / "report.md").is_file() and (out / "critic.pt").is_file()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "lines_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_audit_ends_with_the_verdict_also_in_the_report(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["audit", "--toy", "translate", *TINY, "--out", str(out), "--no-plots"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    assert last == "verdict: " + report["verdict"]["message"]
    assert report["verdict"]["status"] in ("ok", "check")
    assert (out / "report.md").read_text().strip().endswith(report["verdict"]["message"])


def test_audit_defaults_are_the_documented_recipe():
    import torch

    from otdiv.cli.audit import audit_parser, settings

    muon = "muon" if hasattr(torch.optim, "Muon") else "adam"  # Muon needs torch >= 2.9
    args = audit_parser().parse_args(["--toy", "25gaussians"])
    assert (args.constraint, args.steps, args.hidden, args.lambda_gp) == \
        ("lp", 12000, "auto", 10.0)
    assert settings(args).recipe() == (30.0, 2e-3, "cosine", muon)  # docs/audit.md's first block
    # Softplus(30) off the paper toys too (docs/critic_benchmark_history.md); 'none': ReLU
    assert settings(audit_parser().parse_args(["--toy", "translate"])).recipe()[0] == 30.0
    relu = audit_parser().parse_args(["--toy", "funnels", "--softplus-beta", "none"])
    assert settings(relu).recipe()[0] is None
    clip = audit_parser().parse_args(["--toy", "8gaussians", "--constraint", "clip",
                                      "--softplus-beta", "none"])
    assert settings(clip).recipe() == (None, None, "constant", "rmsprop")  # published 5e-5
    gp = audit_parser().parse_args(["--toy", "8gaussians", "--constraint", "gp"])
    assert settings(gp).recipe()[3] == "adam"  # Muon is measured on lp only
    adam = audit_parser().parse_args(["--toy", "8gaussians", "--optimizer", "adam"])
    assert settings(adam).recipe()[3] == "adam"


def test_the_command_and_audit_settings_share_their_defaults():
    from dataclasses import fields

    from otdiv.audit.settings import AuditSettings
    from otdiv.cli.audit import audit_parser, settings

    parsed = vars(audit_parser().parse_args([]))
    assert set(parsed) == {f.name for f in fields(AuditSettings)}  # one vocabulary
    assert settings(audit_parser().parse_args([])).checked() == AuditSettings().checked()


def test_audit_restores_torch_threads(tmp_path, capsys):
    import torch

    torch.set_num_threads(3)
    assert main(["audit", "--toy", "translate", *TINY, "--out", str(tmp_path), "--no-plots"]) == 0
    assert torch.get_num_threads() == 3


def test_negative_numbers_are_values_not_options(tmp_path, capsys):
    from otdiv.cli.audit import audit_parser

    args = audit_parser().parse_args(["--thetas", "-1,0,1", "--theta", "-0.5", "--lr",
                                      "1e-3"])
    assert args.thetas == (-1.0, 0.0, 1.0) and args.theta == -0.5
    assert audit_parser().parse_args(["--thetas", "-.5,-1e-1"]).thetas == (-0.5, -0.1)
    rc = main(["audit", "--toy", "lines", "--theta", "-1", "--thetas", "-1,0", *TINY,
               "--sweep-steps", "5", "--no-plots", "--out", str(tmp_path)])
    assert rc == 0
    sweep = json.loads((tmp_path / "report.json").read_text())["lines_sweep"]
    assert sweep["theta"] == [-1.0, 0.0] and sweep["w1_true"] == [1.0, 0.0]
    with pytest.raises(SystemExit):  # a real unknown option is still refused
        main(["audit", "--thetas", "-x"])
    assert "expected one argument" in capsys.readouterr().err


def _no_training(monkeypatch):
    import otdiv.audit.train as train

    def refuse(*args, **kwargs):
        raise AssertionError("trained although the input was bad")

    monkeypatch.setattr(train, "train_critic", refuse)


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-size", str(10**12)], "--batch-size=1000000000000 needs about"),
    (["--hidden", "1000000,1000000"], "--hidden=1000000,1000000 needs about"),
    (["--dim", str(10**9)], "--dim=1000000000 needs about"),
    (["--n", str(10**12)], "--n=1000000000000 needs about"),
    (["--n-estimate", str(10**12)], "--n-estimate=1000000000000 needs about"),
    (["--lr", "1e300"], "--lr must be in (0, 1]"),
    (["--seed", str(2**70)], "--seed must be None or an integer in [0, 2**63 - 2**20) "
                             "(at most 9223372036853727231), got"),
    (["--seed", str(2**63 - 1)], "--seed must be None or an integer in [0, 2**63 - 2**20)"),
    (["--softplus-beta", "1e308"], "--softplus-beta=1e+308 is too large: the critic "
                                   "computes in float32"),
])
def test_sizes_with_no_limit_are_refused_before_training(argv, message, tmp_path, capsys,
                                                         monkeypatch):
    _no_training(monkeypatch)
    rc = main(["audit", "--toy", "translate", *argv, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert message in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.parametrize(("argv", "option"), [
    (["--lr", "nan"], "--lr"), (["--lr", "0"], "--lr"), (["--lr", "-1e-3"], "--lr"),
    (["--steps", "1e12"], "--steps"), (["--steps", str(10**12)], "--steps"),
    (["--seed", "-1"], "--seed"), (["--n", "1"], "--n"), (["--n-estimate", "1"],
                                                          "--n-estimate"),
    (["--batch-size", "0"],
                                                          "--batch-size"),
])
def test_bad_numbers_are_parse_errors_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as info:
        main(["audit", "--toy", "translate", *argv])
    assert info.value.code == 2
    assert option in _one_line(capsys.readouterr().err)


def test_save_critic_is_checked_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for target, message in [(tmp_path, "is a directory"),
                            (a_file / "critic.pt", "cannot write"),
                            (tmp_path / "missing" / "critic.pt", "cannot write")]:
        rc = main(["audit", "--toy", "translate", *TINY, "--out", str(tmp_path / "o"),
                   "--save-critic", str(target)])
        line = _one_line(capsys.readouterr().err)
        assert rc == 2 and "--save-critic" in line and message in line, line
    assert a_file.read_text() == "x" and not (tmp_path / "o").exists()


def test_broken_checkpoints_give_one_line_naming_the_file(tmp_path, capsys, rng):
    from tests.test_train_api import _bad_checkpoints

    np.save(tmp_path / "x.npy", rng.normal(size=(20, 2)))
    for name, path in _bad_checkpoints(tmp_path).items():
        rc = main(["audit", "--real", str(tmp_path / "x.npy"), "--fake",
                   str(tmp_path / "x.npy"), "--critic", str(path), "--out",
                   str(tmp_path / "o"), "--no-plots"])
        line = _one_line(capsys.readouterr().err)
        assert rc == 2 and str(path) in line, (name, line)


@pytest.mark.parametrize("content", [b"garbage\n", b"", "pickled"])
def test_an_unloadable_checkpoint_is_one_line_without_advice_to_unpickle(content, tmp_path,
                                                                          capsys, rng):
    import pickle

    np.save(tmp_path / "x.npy", rng.normal(size=(20, 2)))
    path = tmp_path / "critic.pt"
    # a pickle of protocol 4 also makes torch warn on stderr: kept off the one line
    path.write_bytes(pickle.dumps(object, protocol=4) if content == "pickled" else content)
    rc = main(["audit", "--real", str(tmp_path / "x.npy"), "--fake", str(tmp_path / "x.npy"),
               "--critic", str(path), "--out", str(tmp_path / "o"), "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(path) in err[0]
    assert "weights-only checkpoint" in err[0]
    assert "False" not in err[0] and "trust" not in err[0]


def test_hostile_inputs_as_a_command(tmp_path):
    from tests.test_train_api import _bad_checkpoints

    np.save(tmp_path / "x.npy", np.zeros((20, 2)))
    bias = _bad_checkpoints(tmp_path)["bias_shape"]
    for argv in (["--toy", "translate", "--batch-size", str(10**12)],
                 ["--real", str(tmp_path / "x.npy"), "--fake", str(tmp_path / "x.npy"),
                  "--critic", str(bias)]):
        proc = subprocess.run([sys.executable, "-m", "otdiv.cli", "audit", *argv, "--out",
                               str(tmp_path / "o")], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("otdiv audit: error: ")


def test_funnels_toy_from_the_command_line(tmp_path, capsys):
    from otdiv.audit.funnels import MinFunnel

    out = tmp_path / "f"
    rc = main(["audit", "--toy", "funnels", "--funnels", "5", "--dim", "3", "--seed", "4",
               *TINY, "--no-plots", "--out", str(out)])
    assert rc == 0 and "funnels d=3 K=5" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["problem"] == "funnels d=3 K=5"
    assert report["audit"]["closed_form_w1"] == MinFunnel(3, 5, seed=4).w1 == 1.0
    # the held-out samples are the seed-4 MinFunnel pair: exact W1 near 1 (n = 60 points)
    assert 0.5 < report["audit"]["exact_w1"] < 2.5
    with pytest.raises(SystemExit):
        main(["audit", "--toy", "funnels", "--funnels", "0"])
    assert "--funnels" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(("seed", "funnel_seed", "apex_seed"), [(4, None, 4), (4, 0, 0),
                                                                (0, 3, 3)])
def test_funnel_seed_draws_the_apexes(seed, funnel_seed, apex_seed):
    # --funnel-seed 0 gives the pairs of benchmark-critics whatever the training seed;
    # by default the training seed draws them (each seed another pair)
    from otdiv.audit.funnels import MinFunnel
    from otdiv.audit.run import _problem
    from otdiv.audit.settings import AuditSettings

    s = AuditSettings(toy="funnels", dim=3, funnels=5, seed=seed,
                      funnel_seed=funnel_seed).checked()
    sample_fake = _problem(s, str).train[1]  # Q's points: moved towards the apexes
    np.testing.assert_array_equal(sample_fake(50, np.random.default_rng(0)),
                                  MinFunnel(3, 5, seed=apex_seed).sample_fake(
                                      50, np.random.default_rng(0)))
    other = MinFunnel(3, 5, seed=apex_seed + 1).sample_fake(50, np.random.default_rng(0))
    assert not np.array_equal(sample_fake(50, np.random.default_rng(0)), other)


def test_bad_funnel_seed_is_one_line_naming_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--toy", "funnels", "--funnel-seed", "-1"])
    assert "--funnel-seed" in _one_line(capsys.readouterr().err)


def test_report_records_the_data_and_the_funnels_apex_seed(tmp_path, capsys):
    # the apexes are drawn by --funnel-seed, not by --seed: report.json must say so, or
    # the pair cannot be rebuilt from the report
    from otdiv.audit.funnels import MinFunnel

    out = tmp_path / "o"
    rc = main(["audit", "--toy", "funnels", "--dim", "3", "--funnels", "5", "--seed", "1",
               "--funnel-seed", "0", *TINY, "--no-plots", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "report.json").read_text())["data"]
    assert (data["toy"], data["dim"], data["funnels"], data["seed"]) == ("funnels", 3, 5, 0)
    assert "d" not in data  # the dimension is recorded once, as dim
    rebuilt = MinFunnel(data["dim"], data["funnels"], seed=data["seed"])
    assert not np.array_equal(rebuilt.apexes, MinFunnel(3, 5, seed=1).apexes)


def test_report_records_the_files_of_own_data(tmp_path, capsys, monkeypatch):
    # relative names on the command line, absolute paths in the report: it is read later,
    # from elsewhere
    rng = np.random.default_rng(0)
    real, fake = tmp_path / "r.npy", tmp_path / "f.npy"
    np.save(real, rng.normal(size=(40, 3)))
    np.save(fake, rng.normal(size=(40, 3)) + 1.0)
    monkeypatch.chdir(tmp_path)
    rc = main(["audit", "--real", "r.npy", "--fake", "f.npy", *TINY, "--n", "20",
               "--no-plots", "--out", "o"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["data"] == {"real": str(real.resolve()), "fake": str(fake.resolve()),
                              "dim": 3}
    assert report["critic_file"] == str((tmp_path / "o" / "critic.pt").resolve())
