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


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the audit command sets one thread on CPU


def test_help_is_light():
    code = ("import sys; from otdiv.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'torch', 'numba', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    proc = _run("--help")
    assert proc.returncode == 0 and "audit" in proc.stdout and "distance" in proc.stdout


def test_distance_matches_scipy(tmp_path, capsys, rng):
    x, y = rng.normal(size=300), rng.normal(size=200) + 0.5
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y[:, None], delimiter=",")
    assert main(["distance", str(tmp_path / "x.npy"), str(tmp_path / "y.csv")]) == 0
    value = float(capsys.readouterr().out)
    np.testing.assert_allclose(value, scipy.stats.wasserstein_distance(x, y), rtol=1e-9)


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
        (["audit", "--toy", "translate", "--steps", "0"], "--steps"),
        (["audit", "--toy", "translate", "--hidden", "a,b"], "--hidden"),
        (["audit", "--toy", "translate", "--softplus-beta", "nan", "--out", str(tmp_path / "o")],
         "--softplus-beta"),
        (["audit", "--toy", "translate", "--device", "tpu"], "device"),
        (["audit", "--toy", "translate", "--dim", "0", "--out", str(tmp_path / "o")], "d must"),
        (["audit", "--toy", "translate", "--out", str(good)], "not a directory"),
        (["audit", "--real", str(good), "--fake", str(good), "--critic",
          str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")], "no such file"),
    ]
    for argv, message in cases:
        line = _one_line_error(capsys, main(argv))
        assert message in line, (argv, line)
    for argv in (["audit", "--constraint", "weight-decay"], ["audit", "--bogus"], ["nope"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        line = _one_line_error(capsys, info.value.code)
        assert "error" in line


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
    from otdiv.audit.train import load_critic

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
    audit = json.loads((own / "report.json").read_text())["audit"]
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
