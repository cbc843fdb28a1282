"""The ``otdiv`` command: distance, audit, and one-line errors for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import ot
import pytest
import scipy.stats

from otdiv.cli import main


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otdiv.cli", *argv], capture_output=True,
                          text=True, timeout=300)


def _one_line_error(capsys_or_proc, rc: int) -> str:
    err = capsys_or_proc.readouterr().err if hasattr(capsys_or_proc, "readouterr") else \
        capsys_or_proc.stderr
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_help_is_light():
    code = ("import sys; from otdiv.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'torch', 'numba', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    proc = _run("--help")
    assert proc.returncode == 0 and "audit" in proc.stdout and "distance" in proc.stdout


def _distance_json(capsys, *argv: str) -> dict:
    assert main(["distance", *argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


@pytest.fixture
def clouds(tmp_path, rng):
    """Two small 2-D clouds of different sizes, one as .npy and one as .csv."""
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + np.array([1.0, 0.5])
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", fmt="%.17g")  # round-trips exactly
    return x, y, str(tmp_path / "x.npy"), str(tmp_path / "y.csv")


def _entropic_reference(x, y, eps, p):
    """OT_eps = <P, C> + eps KL(P | a x b) from POT's log-domain Sinkhorn plan (POT's
    entropy regulariser has the same minimiser as otdiv's KL one)."""
    a, b = ot.unif(len(x)), ot.unif(len(y))
    cost = ot.dist(x, y, metric="euclidean") ** p
    plan = ot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", stopThr=1e-12,
                       numItermax=100_000)
    pos = plan > 0
    kl = np.sum(plan[pos] * np.log(plan[pos] / np.outer(a, b)[pos]))
    return float(np.sum(plan * cost) + eps * kl), float(np.sum(plan * cost)), cost.max()


def test_distance_matches_scipy(tmp_path, capsys, rng):
    x, y = rng.normal(size=300), rng.normal(size=200) + 0.5
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y[:, None], delimiter=",", fmt="%.17g")
    truth = scipy.stats.wasserstein_distance(x, y)
    for method in ("exact", "sliced"):  # in 1-D every direction gives W_1 itself
        report = _distance_json(capsys, str(tmp_path / "x.npy"), str(tmp_path / "y.csv"),
                                "--method", method)
        np.testing.assert_allclose(report["value"], truth, rtol=1e-9)
        assert (report["p"], report["d"], report["rooted"]) == (1.0, 1, True)


def test_distance_exact_is_pot_emd2_and_the_api(clouds, capsys):
    import otdiv

    x, y, fx, fy = clouds
    for p in (None, "1", "2", "3.5"):
        report = _distance_json(capsys, fx, fy, *(["--p", p] if p else []))
        p_used = 1.0 if p is None else float(p)  # wasserstein's default p is 1
        assert report["method"] == "exact" and report["p"] == p_used
        assert report["quantity"].startswith("W_p") and report["eps"] is None
        cost = ot.dist(x, y, metric="euclidean") ** p_used
        truth = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost) ** (1 / p_used)
        np.testing.assert_allclose(report["value"], truth, rtol=1e-9)
        assert report["value"] == otdiv.wasserstein(x, y, p=p_used)


def test_distance_sinkhorn_is_ot_eps_with_the_api_default_p(clouds, capsys):
    import otdiv

    x, y, fx, fy = clouds
    report = _distance_json(capsys, fx, fy, "--method", "sinkhorn", "--eps", "0.5")
    assert report["p"] == 2.0 and report["eps"] == 0.5 and report["rooted"] is False
    assert "unrooted" in report["quantity"] and "entropy" in report["quantity"]
    assert report["converged"] is True
    assert report["value"] == otdiv.sinkhorn(x, y, eps=0.5)  # p = 2, the API's default
    value, transport_cost, cmax = _entropic_reference(x, y, 0.5, 2.0)
    # the solver stops at marginal L1 error <= 1e-6; the value moves by <= that * max C
    np.testing.assert_allclose(report["value"], value, atol=1e-5 * cmax)
    np.testing.assert_allclose(report["transport_cost"], transport_cost, atol=1e-5 * cmax)


def test_distance_sinkhorn_divergence(clouds, capsys):
    import otdiv

    x, y, fx, fy = clouds
    report = _distance_json(capsys, fx, fy, "--method", "sinkhorn_divergence", "--eps", "0.5",
                            "--p", "1")
    assert report["p"] == 1.0 and report["eps"] == 0.5 and report["quantity"].startswith("S_eps")
    assert report["value"] == otdiv.sinkhorn_divergence(x, y, eps=0.5, p=1)
    xy, _, cmax = _entropic_reference(x, y, 0.5, 1.0)
    xx, _, _ = _entropic_reference(x, x, 0.5, 1.0)
    yy, _, _ = _entropic_reference(y, y, 0.5, 1.0)
    np.testing.assert_allclose(report["value"], xy - (xx + yy) / 2, atol=3e-5 * cmax)
    # the divergence of a cloud with itself is 0, the API's default p is 2
    same = _distance_json(capsys, fx, fx, "--method", "sinkhorn_divergence", "--eps", "0.5")
    assert same["p"] == 2.0 and same["value"] == pytest.approx(0.0, abs=1e-5 * cmax)


def test_distance_sliced_is_the_api_with_its_seed(clouds, capsys):
    import otdiv

    x, y, fx, fy = clouds
    report = _distance_json(capsys, fx, fy, "--method", "sliced", "--n-projections", "50",
                            "--seed", "7")
    assert (report["n_projections"], report["seed"], report["p"]) == (50, 7, 1.0)
    assert report["value"] == otdiv.sliced_wasserstein(x, y, n_projections=50, seed=7)
    # SW_1 <= W_1: each projection is 1-Lipschitz
    assert report["value"] <= otdiv.wasserstein(x, y) * (1 + 1e-12)


def test_distance_text_output_is_labelled(clouds, capsys):
    _, _, fx, fy = clouds
    expected = {"exact": ("W_p", "rooted"), "sinkhorn": ("OT_eps", "unrooted, entropy"),
                "sinkhorn_divergence": ("S_eps", "unrooted"), "sliced": ("SW_p", "rooted")}
    for method, (symbol, words) in expected.items():
        assert main(["distance", fx, fy, "--method", method, "--eps", "1"]) == 0
        lines = capsys.readouterr().out.splitlines()
        fields = dict(line.split(None, 1) for line in lines if " " in line)
        assert fields["method"] == method and fields["quantity"].startswith(symbol)
        assert words in fields["quantity"]
        assert fields["p"] == ("1" if method in ("exact", "sliced") else "2")
        assert ("eps" in fields) == method.startswith("sinkhorn")
        assert float(fields["value"]) == _distance_json(
            capsys, fx, fy, "--method", method, "--eps", "1")["value"]


def test_distance_defaults_and_help_follow_the_api(capsys):
    import inspect

    import otdiv
    from otdiv.cli.distance import METHODS, api_default_p

    for method, entry in METHODS.items():
        function = getattr(otdiv, entry.function)
        assert api_default_p(method) == inspect.signature(function).parameters["p"].default
    with pytest.raises(SystemExit):
        main(["distance", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1 for exact and sliced, 2 for sinkhorn and sinkhorn_divergence" in text
    assert inspect.signature(otdiv.sliced_wasserstein).parameters["n_projections"].default \
        == 100 and "(default 100)" in text
    from otdiv.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices["distance"]._actions:
        assert action.help, action.dest  # every option says what it does


def test_distance_hostile_inputs_give_one_line(tmp_path, capsys, rng, monkeypatch):
    good = tmp_path / "good.npy"
    np.save(good, rng.normal(size=(6, 2)))
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "blank.csv").write_text("\n\n")
    np.save(tmp_path / "none.npy", np.zeros((0, 2)))
    np.save(tmp_path / "scalar.npy", np.float64(1.0))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    g = str(good)
    cases = [
        ([str(tmp_path / "empty.csv"), g], "empty"),
        ([str(tmp_path / "blank.csv"), g], "no numbers"),
        ([g, str(tmp_path / "none.npy")], "empty"),
        ([str(tmp_path / "scalar.npy"), g], "shape"),
        ([str(tmp_path / "cube.npy"), g], "shape"),
        ([str(tmp_path / "words.npy"), g], "x"),
        ([g, str(tmp_path)], "is a directory"),
        ([g, str(tmp_path / "nope.npy")], "no such file"),
        ([g, g, "--method", "sinkhorn"], "--eps is required"),
        ([g, g, "--method", "sinkhorn_divergence"], "--eps is required"),
        ([g, g, "--method", "sliced", "--n-projections", str(10**12)], "--n-projections"),
        ([g, g, "--method", "sliced", "--n-projections", "2000000", "--memory-gb", "0.1"],
         "--memory-gb"),
    ]
    for argv, message in cases:
        line = _one_line_error(capsys, main(["distance", *argv]))
        assert message in line and line.startswith("otdiv distance: error:"), (argv, line)
    parse_errors = [
        (["--method", "sliced", "--n-projections", "1e12"], "--n-projections"),
        (["--n-projections", "2.0"], "--n-projections"),
        (["--n-projections", "0"], "--n-projections"),
        (["--p", "0.5"], "--p"),
        (["--p", "nan"], "--p"),
        (["--eps", "0"], "--eps"),
        (["--eps", "inf"], "--eps"),
        (["--seed", "-1"], "--seed"),
        (["--memory-gb", "-1"], "--memory-gb"),
        (["--method", "emd"], "--method"),
    ]
    for argv, message in parse_errors:
        with pytest.raises(SystemExit) as info:
            main(["distance", g, g, *argv])
        assert info.value.code == 2
        assert message in _one_line_error(capsys, 2), argv

    # running out of memory, reading or computing, is one line too
    import otdiv

    def no_memory(*args, p=1, **kwargs):
        raise MemoryError

    with monkeypatch.context() as m:
        m.setattr(np, "load", no_memory)
        assert "does not fit in memory" in _one_line_error(capsys, main(["distance", g, g]))
    with monkeypatch.context() as m:
        m.setattr(otdiv, "sliced_wasserstein", no_memory)
        line = _one_line_error(capsys, main(["distance", g, g, "--method", "sliced"]))
        assert "out of memory" in line


def test_distance_warnings_become_one_note(tmp_path, capsys, monkeypatch):
    import warnings

    import otdiv

    np.save(tmp_path / "x.npy", np.arange(3.0))

    def noisy(*args, p=2, **kwargs):
        np.log(np.zeros(1))  # numpy's RuntimeWarning: divide by zero
        warnings.warn("second\nline", UserWarning, stacklevel=1)
        warnings.warn("old", DeprecationWarning, stacklevel=1)  # not the user's business
        return 1.5

    monkeypatch.setattr(otdiv, "sinkhorn_divergence", noisy)
    f = str(tmp_path / "x.npy")
    assert main(["distance", f, f, "--method", "sinkhorn_divergence", "--eps", "1",
                 "--json"]) == 0
    captured = capsys.readouterr()
    note = captured.err.splitlines()
    assert len(note) == 1 and "RuntimeWarning" in note[0] and "1 more" in note[0]
    report = json.loads(captured.out)
    assert report["value"] == 1.5 and len(report["warnings"]) == 2

    def not_finite(*args, p=2, **kwargs):
        return float("inf")

    monkeypatch.setattr(otdiv, "sinkhorn_divergence", not_finite)
    rc = main(["distance", f, f, "--method", "sinkhorn_divergence", "--eps", "1"])
    assert "inf" in _one_line_error(capsys, rc)


def test_distance_at_extreme_scales(tmp_path, capsys, rng):
    """Data at 1e160: a right answer (W_p and SW_p are 1-homogeneous) or one line, exit 2."""
    import otdiv

    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) + 1.0
    c = 1e160
    np.save(tmp_path / "x.npy", c * x)
    np.save(tmp_path / "y.npy", c * y)
    files = [str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    refs = {"exact": c * otdiv.wasserstein(x, y),
            "sliced": c * otdiv.sliced_wasserstein(x, y, seed=0)}
    for method in ("exact", "sliced", "sinkhorn", "sinkhorn_divergence"):
        rc = main(["distance", *files, "--method", method, "--eps", "0.1", "--json"])
        if rc == 0:
            captured = capsys.readouterr()
            assert len(captured.err.splitlines()) <= 1
            value = json.loads(captured.out)["value"]
            if method in refs:
                np.testing.assert_allclose(value, refs[method], rtol=1e-9)
            else:  # eps = 0.1 is nothing at this scale: OT_eps ~ W_2^2 ~ 1e320 is inf
                assert np.isfinite(value)
        else:
            assert rc == 2 and _one_line_error(capsys, rc)


def test_distance_as_a_command(tmp_path, clouds):
    """Through a real process: errors are one line (no numpy warning, no traceback), the
    exact method leaves torch and GeomLoss unimported, and --json parses."""
    x, y, fx, fy = clouds
    (tmp_path / "empty.csv").write_text("")
    for argv in ([str(tmp_path / "empty.csv"), fy], [fx, str(tmp_path)],
                 [fx, fy, "--method", "sliced", "--n-projections", "1e12"]):
        proc = _run("distance", *argv)
        assert proc.returncode == 2 and proc.stdout == ""
        _one_line_error(proc, proc.returncode)
    code = ("import sys, json; from otdiv.cli import main; "
            f"rc = main(['distance', {fx!r}, {fy!r}, '--json']); "
            "print(json.dumps([rc, 'ot' in sys.modules, 'torch' in sys.modules, "
            "'geomloss' in sys.modules, sys.modules.get('networkx', 0) is None]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    report, flags = json.loads(lines[0]), json.loads(lines[1])
    assert proc.stderr == "" and flags == [0, True, False, False, False]
    truth = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x, y, metric="euclidean"))
    np.testing.assert_allclose(report["value"], truth, rtol=1e-9)


def test_bad_inputs_give_one_line(tmp_path, capsys):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((5, 2)))
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    text = tmp_path / "text.csv"
    text.write_text("a,b\nc,d\n")
    wrong = tmp_path / "data.txt"
    wrong.write_text("1 2\n")
    cases = [
        (["distance", str(tmp_path / "missing.npy"), str(good)], "no such file"),
        (["distance", str(pickled), str(good)], "cannot read"),
        (["audit", "--real", str(cube), "--fake", str(good), "--no-plots",
          "--out", str(tmp_path / "o")], "shape"),
        (["audit", "--real", str(text), "--fake", str(good), "--out", str(tmp_path / "o")],
         "cannot read"),
        (["audit", "--real", str(wrong), "--fake", str(good), "--out", str(tmp_path / "o")],
         "unsupported file type"),
        (["audit", "--real", str(good), "--out", str(tmp_path / "o")], "--real and --fake"),
        (["audit", "--toy", "8gaussians", "--real", str(good), "--fake", str(good)],
         "either --toy"),
        (["audit", "--toy", "translate", "--hidden", "a,b"], "--hidden"),
        (["audit", "--toy", "translate", "--softplus-beta", "nan", "--out", str(tmp_path / "o")],
         "--softplus-beta"),
        (["audit", "--toy", "translate", "--device", "tpu"], "device"),
        (["audit", "--toy", "translate", "--out", str(good)], "not a directory"),
        (["audit", "--real", str(good), "--fake", str(good), "--critic",
          str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")], "no such file"),
    ]
    for argv, message in cases:
        line = _one_line_error(capsys, main(argv))
        assert message in line, (argv, line)
    for argv, message in ((["audit", "--constraint", "weight-decay"], "error"),
                          (["audit", "--bogus"], "error"), (["nope"], "error"),
                          (["audit", "--toy", "translate", "--steps", "0"], "--steps"),
                          (["audit", "--toy", "translate", "--dim", "0"], "--dim")):
        with pytest.raises(SystemExit) as info:
            main(argv)
        line = _one_line_error(capsys, info.value.code)
        assert message in line, (argv, line)


def test_audit_toy_end_to_end_then_own_data_with_checkpoint(tmp_path, capsys, rng):
    # in-process: a subprocess per call would pay torch's import each time
    out = tmp_path / "toy"
    ckpt = tmp_path / "critic.pt"
    rc = main(["audit", "--toy", "translate", "--steps", "60", "--hidden", "16,16", "--n",
               "200", "--repeats", "2", "--lr", "1e-3", "--softplus-beta", "30",
               "--no-progress", "--out", str(out), "--save-critic", str(ckpt)])
    stdout = capsys.readouterr().out
    assert rc == 0 and "translate" in stdout and "report:" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["audit"]["closed_form_w1"] == 1.0 and report["audit"]["repeats"] == 2
    assert report["training"]["settings"]["lr"] == 1e-3
    assert report["training"]["settings"]["softplus_beta"] == 30
    from otdiv.audit import load_critic

    assert type(load_critic(str(ckpt))[1]).__name__ == "Softplus"  # the checkpoint says so
    assert len(report["training"]["history"]["estimate"]) > 2
    for png in ("history.png", "levels.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # the saved critic audits the user's own files; exact W1 is POT's on those points
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(120, 2)) + 1.0
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    own = tmp_path / "own"
    rc = main(["audit", "--real", str(tmp_path / "x.npy"), "--fake", str(tmp_path / "y.csv"),
               "--critic", str(ckpt), "--out", str(own), "--no-progress", "--no-plots"])
    assert rc == 0
    own_report = json.loads((own / "report.json").read_text())
    assert own_report["critic_file"] == str(ckpt.resolve())  # which critic was audited
    assert "training" not in own_report
    audit = own_report["audit"]
    exact = ot.emd2(ot.unif(150), ot.unif(120), ot.dist(x, y, metric="euclidean"))
    np.testing.assert_allclose(audit["exact_w1"], exact, rtol=1e-9)
    assert audit["certified_lower"] <= audit["exact_w1"]
    capsys.readouterr()

    # a critic for another dimension, and a pickled module, are refused in one line
    np.save(tmp_path / "x3.npy", rng.normal(size=(10, 3)))
    rc = main(["audit", "--real", str(tmp_path / "x3.npy"), "--fake", str(tmp_path / "x3.npy"),
               "--critic", str(ckpt), "--out", str(own)])
    assert "dimension" in _one_line_error(capsys, rc)
    import torch

    from otdiv.audit import mlp_critic

    torch.save(mlp_critic(2, (4,)), tmp_path / "module.pt")
    rc = main(["audit", "--real", str(tmp_path / "x.npy"), "--fake", str(tmp_path / "x.npy"),
               "--critic", str(tmp_path / "module.pt"), "--out", str(own)])
    assert "weights-only" in _one_line_error(capsys, rc)


def test_audit_own_data_trains_on_half(tmp_path, capsys, rng):
    x, y = rng.normal(size=(200, 1)), rng.normal(size=(200, 1)) + 2.0
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    rc = main(["audit", "--real", str(tmp_path / "x.npy"), "--fake", str(tmp_path / "y.npy"),
               "--steps", "30", "--hidden", "8", "--no-progress", "--no-plots", "--out",
               str(tmp_path / "o")])
    assert rc == 0
    audit = json.loads((tmp_path / "o" / "report.json").read_text())["audit"]
    assert (audit["n"], audit["m"]) == (100, 100)  # the held-out halves


def test_lines_toy_runs_the_sweep(tmp_path, capsys):
    rc = main(["audit", "--toy", "lines", "--steps", "20", "--hidden", "8", "--n", "200",
               "--repeats", "1", "--thetas", "0,1", "--sweep-steps", "20", "--no-progress",
               "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "parallel lines" in out and "lines_sweep.png" in out
    sweep = json.loads((tmp_path / "report.json").read_text())["lines_sweep"]
    assert sweep["theta"] == [0.0, 1.0] and sweep["w1_true"] == [0.0, 1.0]
