"""``otdiv benchmark-critics`` (run as python -m otdiv.cli.benchmark_critics): rows and checks."""

import numpy as np
import ot
import pytest

from otdiv.audit import make_toy
from otdiv.cli.benchmark_critics import COLUMNS, main


def test_one_short_row_reports_exact_w1_of_the_audited_samples(capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert main(["--problems", "translate:2", "--steps", "5", "--n", "60", "--hidden", "8",
                 "--n-estimate", "60", "--device", "cpu", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3  # header, rule, one row
    cells = dict(zip(COLUMNS, (c.strip() for c in lines[2].strip("|").split("|")),
                     strict=True))
    # the audit's draws: seed 0 + 1000, real then fake, two repeats; exact W1 by POT
    toy = make_toy("translate", d=2)
    rng = np.random.default_rng(1000)
    w1 = []
    for _ in range(2):
        x, y = toy.sample_real(60, rng), toy.sample_fake(60, rng)
        w1.append(ot.emd2(np.full(60, 1 / 60), np.full(60, 1 / 60),
                          ot.dist(x, y, metric="euclidean")))
    assert float(cells["exact W1 (samples)"]) == pytest.approx(np.mean(w1), abs=1e-4)
    assert float(cells["envelope cert."]) <= float(cells["exact W1 (samples)"]) + 1e-4
    assert out.exists()


@pytest.mark.parametrize("argv, word", [(["--problems", "funnels:2"], "problems"),
                                        (["--constraints", "nope"], "constraints"),
                                        (["--seeds", "a"], "seeds"),
                                        (["--penalty-batch", "257"], "--penalty-batch"),
                                        (["--penalty-batch", "0"], "--penalty-batch"),
                                        (["--optimizer", "sgd"], "--optimizer"),
                                        (["--reference-n", "1"], "--reference-n"),
                                        (["--reference-repeats", "1"], "--reference-repeats"),
                                        (["--problems", ""], "--problems"),
                                        (["--problems", " , "], "--problems"),
                                        (["--seeds", ""], "--seeds"),
                                        (["--seeds=-3"], "--seeds"),
                                        (["--constraints", ","], "--constraints"),
                                        (["--device", "mps"], "--device"),
                                        (["--lr", "5"], "--lr"),
                                        (["--steps", "2000000000"], "--steps"),
                                        (["--softplus-beta", "1e-300"], "--softplus-beta"),
                                        (["--problems", "scale:100000000"], "lower d"),
                                        (["--problems", "translate:64", "--hidden", "100000"],
                                         "--hidden"),
                                        (["--problems", "8gaussians", "--n", "6000000"],
                                         "--n="),
                                        (["--problems", "translate:2", "--n-estimate",
                                          "30000000"], "--n-estimate="),
                                        (["--problems", "8gaussians", "--reference-n",
                                          "1000000000"], "--reference-n=1000000000 needs"),
                                        (["--reference-repeats", "1000000000"],
                                         "--reference-repeats"),
                                        (["--softplus-beta", "1e308"],
                                         "--softplus-beta=1e+308 is too large"),
                                        (["--softplus-beta", "3.5e38"], "--softplus-beta"),
                                        (["--seeds", "9223372036854775807"],
                                         "[0, 2**63 - 2**20) (at most 9223372036853727231)"),
                                        (["--problems", "funnels:99999999999999999999:4"],
                                         "--problems: 'funnels:99999999999999999999:4': d "),
                                        (["--problems", "scale:4611686018427387904"],
                                         "lower d (--problems)"),
                                        (["--constraints", "clip,lp", "--penalty-batch",
                                          "257"], "--penalty-batch"),
                                        (["--problems", "funnels:128:4", "--population",
                                          "--n", "20000"],
                                         "n_steps=8), over the memory budget of 4 GiB; lower --n "
                                         "(or raise the budget: OTDIV_MEMORY_BUDGET_GIB)")])
def test_bad_arguments_are_one_line_errors(argv, word, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    out = capsys.readouterr()
    assert word in out.err and len(out.err.strip().splitlines()) == 1
    assert out.out == ""  # refused before the table's header


def test_saved_critic_reproduces_the_rows_raw_estimate(capsys, tmp_path):
    # --save-critics writes the audited critic: its scores on the audit's own draws (seed
    # 0 + 1000, real then fake, two repeats of --n-estimate points, each followed by the
    # choice of the --n points of exact W1) give the row's raw estimate back
    import json

    import torch

    from otdiv.audit.checkpoint import load_critic

    out, folder = tmp_path / "rows.json", tmp_path / "critics"
    assert main(["--problems", "scale:3", "--steps", "4", "--n", "50", "--n-estimate", "300",
                 "--hidden", "8",
                 "--batch-size", "16", "--schedule", "constant", "--device", "cpu",
                 "--json", str(out), "--save-critics", str(folder)]) == 0
    record = json.loads(out.read_text())[0]
    assert (record["batch_size"], record["schedule"]) == (16, "constant")
    assert record["optimizer"] == ("muon" if hasattr(torch.optim, "Muon") else "adam")  # auto
    assert (record["penalty_batch"], record["softplus_beta"]) == (16, 30.0)
    assert (record["n"], record["n_estimate"]) == (50, 300)
    critic = load_critic(str(folder / "scale_d3_lp_s0.pt")).double()
    toy = make_toy("scale", d=3)
    rng = np.random.default_rng(1000)
    raw = []
    for _ in range(2):
        x, y = toy.sample_real(300, rng), toy.sample_fake(300, rng)
        rng.choice(300, size=50, replace=False), rng.choice(300, size=50, replace=False)
        with torch.no_grad():
            fx, fy = critic(torch.as_tensor(x)), critic(torch.as_tensor(y))
        raw.append(float(fx.mean() - fy.mean()))
    # float32 training weights evaluated in float64 against the audit's float32 scores
    assert record["estimate"] == pytest.approx(np.mean(raw), rel=1e-4, abs=1e-6)


def test_load_critics_audits_the_saved_critics_again(capsys, tmp_path):
    # the same audit (seed 0 + 1000) of the critic read back gives the row's numbers again;
    # a missing checkpoint is a one-line error naming the option
    import json

    common = ["--problems", "translate:2", "--n", "40", "--n-estimate", "80", "--device",
              "cpu"]
    folder = tmp_path / "critics"
    assert main([*common, "--steps", "3", "--hidden", "8", "--json", str(tmp_path / "a.json"),
                 "--save-critics", str(folder)]) == 0
    assert main([*common, "--json", str(tmp_path / "b.json"),
                 "--load-critics", str(folder)]) == 0
    a, b = (json.loads((tmp_path / f).read_text())[0] for f in ("a.json", "b.json"))
    for key in ("estimate", "exact_w1", "interp_grad_norm", "envelope_lower"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9)
    assert b["critic"].endswith("translate_d2_lp_s0.pt") and "steps" not in b
    capsys.readouterr()
    # seed 0's checkpoint is there, seed 1's is not: refused before any row is printed
    assert main([*common, "--seeds", "0,1", "--load-critics", str(folder)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "--load-critics" in err[0] and "seed 1" in err[0]
    assert captured.out == ""


def test_the_recommended_width_grows_with_the_dimension():
    from otdiv.audit.models import recommended_hidden
    from otdiv.cli._critic_problems import hidden_for

    assert recommended_hidden(2) == (96, 96, 96)
    assert recommended_hidden(7) == (96, 96, 96)
    assert recommended_hidden(8) == (256, 256, 256)      # 256 wide from d = 8
    assert recommended_hidden(15) == (256, 256, 256)
    assert recommended_hidden(16) == (1024, 256, 256)    # a wider first layer from d = 16
    assert recommended_hidden(64) == (1024, 256, 256)
    assert recommended_hidden(200) == (1024, 400, 400)
    assert recommended_hidden(10**9) == (1024, 1024, 1024)
    assert hidden_for(None, 64) == (1024, 256, 256)
    assert hidden_for(0, 64) == (128, 128, 128)   # Korotin et al.'s max(2 d, 128)
    assert hidden_for(32, 64) == (32, 32, 32)


@pytest.mark.parametrize("text", ["8,0,8", "8,,8", "-1", "8.5", "x"])
def test_bad_hidden_widths_exit_2_with_one_line_naming_the_option(text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--problems", "translate:2", "--hidden", text])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--hidden" in err[0] and text in err[0]


def test_comma_separated_widths_build_that_critic(capsys, tmp_path):
    import json

    import torch

    from otdiv.audit.checkpoint import load_critic
    from otdiv.cli._critic_problems import hidden_for, widths_arg

    assert widths_arg("12,5") == (12, 5) and hidden_for(widths_arg("12,5"), 64) == (12, 5)
    assert widths_arg("7") == 7 and hidden_for(7, 64) == (7, 7, 7)
    out, folder = tmp_path / "rows.json", tmp_path / "critics"
    assert main(["--problems", "translate:3", "--steps", "2", "--n", "40", "--n-estimate",
                 "40", "--hidden", "12,5", "--device", "cpu", "--json", str(out),
                 "--save-critics", str(folder)]) == 0
    assert json.loads(out.read_text())[0]["hidden"] == [12, 5]
    critic = load_critic(str(folder / "translate_d3_lp_s0.pt"))
    shapes = [tuple(m.weight.shape) for m in critic.modules()
              if isinstance(m, torch.nn.Linear)]
    assert shapes == [(12, 3), (5, 12), (1, 5)]


def test_runs_as_a_module_without_runpys_or_pykeops_warnings():
    # python -m otdiv.cli.benchmark_critics: the package must not have imported the module
    # already (runpy's RuntimeWarning), nor may pykeops print its CUDA notice
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "otdiv.cli.benchmark_critics", "--problems",
                           "translate:2", "--steps", "2", "--n", "30", "--n-estimate", "30",
                           "--hidden", "4", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # (other libraries may warn on other machines: check for these two only)
    assert "found in sys.modules" not in proc.stderr and "[KeOps]" not in proc.stderr
    assert proc.stdout.count("translate d=2") == 1


def test_the_population_column_is_a_bound_up_to_its_standard_error(capsys):
    assert main(["--problems", "translate:3", "--steps", "20", "--n", "80", "--hidden", "8",
                 "--device", "cpu", "--population"]) == 0
    cells = dict(zip(COLUMNS, (c.strip() for c in
                               capsys.readouterr().out.strip().splitlines()[2]
                               .strip("|").split("|")), strict=True))
    value, se = (float(v) for v in cells["pop. cert."].split("±"))
    assert value <= 1.0 + 5 * se   # translate: W1 = 1
    assert float(cells["pop. cert. / W1"]) == pytest.approx(value, abs=1e-3)


def test_the_default_optimizer_is_the_recipes(tmp_path):
    """--optimizer auto trains lp with Muon (torch >= 2.9; Adam before) and gp with Adam:
    the rows equal those of the explicit choice and differ from the other one."""
    import json

    import torch

    def estimate(*options):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.json"
        assert main(["--problems", "scale:3", "--steps", "6", "--n", "50", "--n-estimate",
                     "200", "--hidden", "8,8", "--batch-size", "16", "--device", "cpu",
                     "--json", str(out), *options]) == 0
        return [row["estimate"] for row in json.loads(out.read_text())]

    lp_recipe = "muon" if hasattr(torch.optim, "Muon") else "adam"
    auto = estimate("--constraints", "lp,gp")
    assert auto[0] == estimate("--constraints", "lp", "--optimizer", lp_recipe)[0]
    assert auto[1] == estimate("--constraints", "gp", "--optimizer", "adam")[0]
    if lp_recipe == "muon":
        assert auto[0] != estimate("--constraints", "lp", "--optimizer", "adam")[0]


def test_a_paper_toys_truth_is_the_reference_w1_of_large_samples(capsys, tmp_path):
    """No closed form: every error is against the mean exact W1 of --reference-repeats
    draws of --reference-n points per side (checked with POT on the same draws), computed
    once per problem; --reference-n 0 falls back to exact W1 of the row's samples."""
    import json

    from otdiv.audit.toys import REFERENCE_SEED

    common = ["--problems", "8gaussians,translate:2", "--steps", "3", "--n", "50",
              "--n-estimate", "60", "--hidden", "8", "--device", "cpu", "--seeds", "0,1"]
    out = tmp_path / "rows.json"
    assert main([*common, "--reference-n", "300", "--reference-repeats", "3",
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    toy, rng = make_toy("8gaussians"), np.random.default_rng(REFERENCE_SEED)
    values = []
    for _ in range(3):
        x, y = toy.sample_real(300, rng), toy.sample_fake(300, rng)
        values.append(ot.emd2(np.full(300, 1 / 300), np.full(300, 1 / 300),
                              ot.dist(x, y, metric="euclidean")))
    ref = np.mean(values)
    mixture, translate = [r for r in json.loads(out.read_text())
                          if r["problem"] == "8gaussians"], \
        [r for r in json.loads(out.read_text()) if r["problem"] == "translate d=2"]
    assert len(mixture) == 2 and len(translate) == 2
    for r in mixture:
        assert r["reference_w1"] == pytest.approx(ref, rel=1e-9) == r["truth"]
        assert r["reference_w1_se"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(3),
                                                     rel=1e-6)
        for key in ("flow_corrected", "ctransform_corrected", "normalized_estimate"):
            error = "rel_error_" + key.replace("_estimate", "")  # null in JSON when undefined
            assert (r[error] is None) == (r[key] is None)
            if r[key] is not None:
                assert r[error] == pytest.approx(r[key] / ref - 1)
        assert r["rel_error"] == pytest.approx(r["estimate"] / ref - 1)
    assert all("reference_w1" not in r and r["truth"] == 1.0 for r in translate)
    assert captured.err.count("reference W1 of 8gaussians") == 1  # once for both seeds
    cells = dict(zip(COLUMNS, (c.strip() for c in captured.out.strip().splitlines()[2]
                               .strip("|").split("|")), strict=True))
    assert cells["population W1"].startswith(f"{ref:.4f} ± ") and "(ref.)" in cells[
        "population W1"]
    # --reference-n 0: the row's own held-out samples are the truth, as before
    out = tmp_path / "own.json"
    assert main([*common, "--reference-n", "0", "--json", str(out)]) == 0
    assert "reference W1" not in capsys.readouterr().err
    for r in json.loads(out.read_text()):
        if r["problem"] == "8gaussians":
            assert r["truth"] == r["exact_w1"] and "reference_w1" not in r


def _rows(text: str) -> list[str]:
    """The table's rows without their last cell (wall seconds, which vary run to run)."""
    return [line.rsplit("|", 2)[0] for line in text.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| problem")]


def test_json_resumes_a_run_and_keeps_the_rows_of_other_settings(capsys, tmp_path,
                                                                  monkeypatch):
    """A run that stops after its first row leaves that row in --json; the run again reads
    it back (the same line, no training) and trains only the rest; a run with other
    settings keeps the earlier rows in the file."""
    import json

    import otdiv.audit

    common = ["--problems", "translate:2,scale:2", "--steps", "3", "--n", "40",
              "--n-estimate", "60", "--hidden", "8", "--device", "cpu"]
    out = tmp_path / "rows.json"
    # the reference run, in another file
    assert main([*common, "--json", str(tmp_path / "whole.json")]) == 0
    whole = _rows(capsys.readouterr().out)
    assert len(whole) == 2

    real_train, trained = otdiv.audit.train_critic, []

    def failing_after_one(*a, **k):
        if trained:
            raise RuntimeError("the machine went away")
        trained.append(1)
        return real_train(*a, **k)

    monkeypatch.setattr(otdiv.audit, "train_critic", failing_after_one)
    with pytest.raises(RuntimeError):
        main([*common, "--json", str(out)])
    capsys.readouterr()
    assert [r["problem"] for r in json.loads(out.read_text())] == ["translate d=2"]

    def counting(*a, **k):
        trained.append(1)
        return real_train(*a, **k)

    trained.clear()
    monkeypatch.setattr(otdiv.audit, "train_critic", counting)
    assert main([*common, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(trained) == 1                       # scale d=2 only
    assert _rows(captured.out) == whole            # the rows of one uninterrupted run
    assert "1 of 2 rows read back" in captured.err
    # every row read back: nothing trains; other settings: a new row, the old ones kept
    trained.clear()
    assert main([*common, "--json", str(out)]) == 0 and not trained
    assert _rows(capsys.readouterr().out) == whole
    assert main([*common, "--steps", "4", "--problems", "translate:2", "--json",
                 str(out)]) == 0
    records = json.loads(out.read_text())
    assert [(r["problem"], r["steps"]) for r in records] == [
        ("translate d=2", 3), ("scale d=2", 3), ("translate d=2", 4)]


def test_json_keeps_the_rows_another_run_writes_meanwhile(capsys, tmp_path, monkeypatch):
    """Two runs sharing --json: each write reads the file again, so a row the other run
    wrote between two of this run's rows stays; repeated seeds run once; a row whose truth
    is a closed form does not depend on --reference-n."""
    import json

    import otdiv.cli.benchmark_critics as bc

    out = tmp_path / "rows.json"
    theirs = {"problem": "someone else's", "settings": {"problem": "someone else's"}}
    real_row = bc.row

    def row_then_other_writer(*a, **k):
        result = real_row(*a, **k)
        rows = json.loads(out.read_text()) if out.exists() else []
        out.write_text(json.dumps([*rows, theirs]))
        return result

    monkeypatch.setattr(bc, "row", row_then_other_writer)
    common = ["--problems", "translate:2", "--steps", "3", "--n", "40", "--n-estimate", "60",
              "--hidden", "8", "--device", "cpu", "--json", str(out)]
    assert main([*common, "--seeds", "0,1,0"]) == 0
    captured = capsys.readouterr()
    assert len(_rows(captured.out)) == 2 and "row 2/2" in captured.err
    records = json.loads(out.read_text())
    assert theirs in records and [r["seed"] for r in records if r is not theirs and
                                  r["problem"] == "translate d=2"] == [0, 1]
    monkeypatch.setattr(bc, "row", real_row)
    assert main([*common, "--seeds", "1", "--reference-n", "0", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "1 of 1 rows read back" in captured.err and "row 1/1" not in captured.err


def test_json_is_checked_before_anything_trains(capsys, tmp_path):
    missing = tmp_path / "no-such-folder" / "rows.json"
    assert main(["--problems", "translate:2", "--steps", "2", "--json", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "--json" in captured.err and not missing.parent.exists()


def test_a_row_read_back_stays_tied_to_its_checkpoints(capsys, tmp_path):
    """--load-critics: a checkpoint trained again under the same name is audited again, not
    read back; --save-critics: a row is read back only if the folder holds its critic."""
    import json

    common = ["--problems", "translate:2", "--n", "40", "--n-estimate", "60", "--device",
              "cpu"]
    ck, rows = tmp_path / "ck", tmp_path / "rows.json"
    train = [*common, "--hidden", "8", "--save-critics", str(ck)]
    assert main([*train, "--steps", "3"]) == 0
    assert main([*common, "--load-critics", str(ck), "--json", str(rows)]) == 0
    first = json.loads(rows.read_text())[0]["estimate"]
    assert main([*train, "--steps", "40"]) == 0                  # another critic, same name
    capsys.readouterr()
    assert main([*common, "--load-critics", str(ck), "--json", str(rows)]) == 0
    assert "read back" not in capsys.readouterr().err
    both = json.loads(rows.read_text())    # the first critic's row is kept beside it
    assert len(both) == 2 and both[0]["estimate"] == first != both[1]["estimate"]
    # --save-critics into a new folder: the row recorded without it is trained again
    rows2 = tmp_path / "rows2.json"
    assert main([*common, "--hidden", "8", "--steps", "3", "--json", str(rows2)]) == 0
    ck2 = tmp_path / "ck2"
    assert main([*train, "--steps", "3", "--json", str(rows2)]) == 0
    assert (ck2.parent / "ck" / "translate_d2_lp_s0.pt").exists()
    capsys.readouterr()
    assert main([*common, "--hidden", "8", "--steps", "3", "--save-critics", str(ck2),
                 "--json", str(rows2)]) == 0
    assert "read back" not in capsys.readouterr().err
    assert (ck2 / "translate_d2_lp_s0.pt").exists()
    assert main([*common, "--hidden", "8", "--steps", "3", "--save-critics", str(ck2),
                 "--json", str(rows2)]) == 0
    assert "1 of 1 rows read back" in capsys.readouterr().err   # ck2 holds its critic now


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}', "[1, 2]"])
def test_a_json_file_that_holds_no_rows_is_a_one_line_error(content, capsys, tmp_path):
    out = tmp_path / "rows.json"
    out.write_text(content)
    assert main(["--problems", "translate:2", "--steps", "2", "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "--json" in captured.err and out.read_text() == content   # left as it was


def test_a_row_without_the_population_bound_is_not_read_back_for_one_with_it(capsys,
                                                                             tmp_path):
    import json

    common = ["--problems", "translate:2", "--steps", "3", "--n", "40", "--n-estimate", "60",
              "--hidden", "8", "--device", "cpu", "--json", str(tmp_path / "rows.json")]
    assert main(common) == 0
    capsys.readouterr()
    assert main([*common, "--population"]) == 0
    assert "read back" not in capsys.readouterr().err
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert ["population_value" in r for r in rows] == [False, True]


def test_problems_spelled_differently_run_once(capsys):
    assert main(["--problems", "translate:2,translate:02, translate: 2", "--steps", "2",
                 "--n", "20", "--n-estimate", "20", "--hidden", "8", "--batch-size", "8",
                 "--device", "cpu", "--no-progress"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert len(rows) == 1 and "translate d=2 |" in rows[0]


def _short(*extra: str) -> list[str]:
    return ["--problems", "translate:2", "--steps", "2", "--n", "20", "--n-estimate", "20",
            "--hidden", "8", "--batch-size", "8", "--device", "cpu", "--no-progress", *extra]


@pytest.mark.parametrize("save", [False, True])
@pytest.mark.parametrize("damage", ["drop row_seconds", "drop problem", "zero exact_w1",
                                    "text estimate"])
def test_a_damaged_row_to_resume_is_a_one_line_error(damage, save, capsys, tmp_path):
    import json

    out = tmp_path / "rows.json"
    saving = ("--save-critics", str(tmp_path / "critics")) if save else ()
    assert main(_short("--json", str(out), *saving)) == 0
    rows = json.loads(out.read_text())
    key = damage.split()[1]
    if damage.startswith("drop"):
        del rows[0][key]
    elif damage.startswith("zero"):
        rows[0][key] = 0.0  # the certificate's ratio has no value then: an empty cell
    else:
        rows[0][key] = "abc"
    out.write_text(json.dumps(rows))
    capsys.readouterr()
    code = main(_short("--json", str(out), *saving))
    captured = capsys.readouterr()
    err = captured.err
    if damage.startswith("zero"):  # read back, its certificate ratio left empty
        assert code == 0
        cells = dict(zip(COLUMNS, (c.strip() for c in captured.out.strip().splitlines()[2]
                                   .strip("|").split("|")), strict=True))
        assert cells["cert / exact"] == "" and cells["exact W1 (samples)"] == "0.0000"
    else:
        assert code == 2 and "--json" in err and "damaged" in err
        assert len(err.strip().splitlines()) == 1


def test_save_critics_is_checked_before_training_and_a_failed_save_keeps_the_row(
        capsys, tmp_path, monkeypatch):
    import json

    import otdiv.audit.checkpoint as checkpoint

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = tmp_path / "rows.json"
    assert main(_short("--json", str(out), "--save-critics", str(blocker))) == 2
    err = capsys.readouterr()
    assert "--save-critics" in err.err and err.out == "" and not out.exists()

    def refuse(critic, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(checkpoint, "save_critic", refuse)
    assert main(_short("--json", str(out), "--save-critics", str(tmp_path / "c"))) == 2
    err = capsys.readouterr().err
    assert "--save-critics" in err and "kept" in err
    (row,) = json.loads(out.read_text())  # trained and audited: written before the save
    assert row["problem"] == "translate d=2" and "saved_critic_sha256" not in row


@pytest.mark.parametrize("message", ["DefaultCPUAllocator: can't allocate memory: you tried "
                                     "to allocate 1 bytes", None])
def test_running_out_of_memory_is_one_line_and_other_errors_propagate(message, capsys,
                                                                       monkeypatch):
    import otdiv.audit
    from otdiv.cli import main as otdiv_main

    def fails(*args, **kwargs):
        raise RuntimeError(message) if message else RuntimeError("a bug, not memory")

    monkeypatch.setattr(otdiv.audit, "train_critic", fails)
    argv = ["benchmark-critics", *_short()]
    if message is None:
        with pytest.raises(RuntimeError, match="a bug"):
            otdiv_main(argv)
        return
    assert otdiv_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0]


def test_a_row_whose_population_bound_cannot_be_computed_keeps_its_row_and_the_rest(
        capsys, tmp_path):
    # 121 layers of 8 units: the critic's gradient vanishes at the samples, so the held-out
    # bound on the population W1 cannot be computed; its cells stay empty (as the audit's
    # own cells of such a critic do), with one note naming the row, and both rows are written
    import json

    out = tmp_path / "rows.json"
    assert main(["--problems", "funnels:2:4", "--hidden", ",".join(["8"] * 121),
                 "--population", "--seeds", "0,1", "--json", str(out), "--steps", "5",
                 "--n", "20", "--n-estimate", "20", "--batch-size", "16", "--device", "cpu",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.strip().splitlines()[2:]
    assert len(rows) == 2
    for text in rows:
        cells = dict(zip(COLUMNS, (c.strip() for c in text.strip("|").split("|")),
                         strict=True))
        assert cells["pop. cert."] == cells["pop. cert. / W1"] == ""
    notes = captured.err.strip().splitlines()
    assert [n.split(":")[1].strip() for n in notes] == ["funnels d=2 K=4, lp, seed 0",
                                                         "funnels d=2 K=4, lp, seed 1"]
    assert all("--population" in n and "gradient vanishes" in n for n in notes)
    records = json.loads(out.read_text())
    assert [r["seed"] for r in records] == [0, 1]
    assert all("gradient vanishes" in r["population_error"] and "population_value" not in r
               for r in records)
    # read back (resume): the same empty cells and the same note
    assert main(["--problems", "funnels:2:4", "--hidden", ",".join(["8"] * 121),
                 "--population", "--seeds", "0,1", "--json", str(out), "--steps", "5",
                 "--n", "20", "--n-estimate", "20", "--batch-size", "16", "--device", "cpu",
                 "--no-progress"]) == 0
    again = capsys.readouterr()
    assert again.out.strip().splitlines()[2:] == rows
    assert again.err.count("no population bound") == 2


def test_a_failing_row_is_named_and_the_rows_before_it_are_kept(capsys, tmp_path,
                                                                monkeypatch):
    import json

    import otdiv.audit

    train = otdiv.audit.train_critic

    def diverges_on_seed_1(*args, seed, **kwargs):
        if seed == 1:
            raise FloatingPointError("the critic's estimate became nan at step 2; lower lr")
        return train(*args, seed=seed, **kwargs)

    monkeypatch.setattr(otdiv.audit, "train_critic", diverges_on_seed_1)
    out = tmp_path / "rows.json"
    assert main(_short("--seeds", "0,1", "--json", str(out))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "translate d=2, lp, seed 1: the critic's estimate became nan" in err[0]
    assert f"the 1 rows before it are in {out}" in err[0]
    assert [r["seed"] for r in json.loads(out.read_text())] == [0]


def test_clip_and_spectral_take_no_penalty_batch(capsys, tmp_path):
    # no gradient penalty: --penalty-batch is not theirs, so not held to --batch-size
    import json

    out = tmp_path / "rows.json"
    assert main(_short("--constraints", "clip,spectral", "--penalty-batch", "64",
                       "--json", str(out))) == 0
    rows = json.loads(out.read_text())
    assert [(r["constraint"], r["penalty_batch"]) for r in rows] == [("clip", None),
                                                                     ("spectral", None)]
    capsys.readouterr()
    assert main(_short("--constraints", "clip,lp", "--penalty-batch", "64")) == 2
    err = capsys.readouterr().err
    assert "--penalty-batch must be at most --batch-size = 8" in err


def test_help_is_whole_sentences_without_markup_and_explains_every_option(capsys):
    from otdiv.cli import build_parser

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert ":func:" not in text and ":mod:" not in text and "``" not in text
    parser = build_parser()._subparsers._group_actions[0].choices["benchmark-critics"]
    assert parser.description.endswith(".") and "train_critic" not in parser.description
    for action in parser._actions:
        assert action.help, action.option_strings


def _saved(tmp_path, problem: str = "translate:3"):
    folder = tmp_path / "critics"
    assert main(["--problems", problem, "--steps", "2", "--n", "20", "--n-estimate", "20",
                 "--hidden", "8", "--batch-size", "8", "--device", "cpu", "--no-progress",
                 "--save-critics", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("damage", ["directory", "garbage", "pickled module", "other d"])
def test_load_critics_checks_every_checkpoint_before_the_first_row(damage, capsys, tmp_path):
    import torch

    folder = _saved(tmp_path)
    # translate:2's critic is the one checked: seed 0 of translate d=3 is fine
    target = folder / "translate_d2_lp_s0.pt"
    if damage == "directory":
        target.mkdir()
    elif damage == "garbage":
        target.write_bytes(b"garbage\n")
    elif damage == "pickled module":
        torch.save(torch.nn.Linear(2, 1), target)
    else:  # a critic of d = 3 where d = 2 is audited
        (folder / "translate_d3_lp_s0.pt").rename(target)
        _saved(tmp_path)
    capsys.readouterr()
    assert main(["--problems", "translate:3,translate:2", "--n", "20", "--n-estimate", "20",
                 "--device", "cpu", "--no-progress", "--load-critics", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # before the table's header, before translate:3's row
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert "--load-critics" in err[0] and "translate d=2, lp, seed 0" in err[0]
    assert "False" not in err[0] and "trust" not in err[0]  # no advice to unpickle
    assert {"directory": "is a directory", "garbage": "weights-only",
            "pickled module": "pickled objects other than tensors",
            "other d": "cannot score samples of dimension 2"}[damage] in err[0]
