"""train_critic(checkpoint=...): a stopped run goes on from its last saved state and returns
the critic an uninterrupted run returns; states of other runs and damaged files are refused
naming the argument; otdiv benchmark-critics --json resumes a row stopped mid-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import otdiv.audit.resume as resume_module
from otdiv.audit import make_toy, train_critic
from otdiv.cli.benchmark_critics import main as benchmark_main

TOY = make_toy("funnels", d=3, funnels=4)
COMMON = {"steps": 12, "batch_size": 16, "hidden": (8, 8), "softplus_beta": 30.0,
          "eval_every": 3, "eval_size": 32, "device": "cpu", "seed": 5, "progress": False}
FAST = {"lp": 0.2, "gp": 0.05, "clip": 0.01, "spectral": 0.05}  # steep critics: the
# penalties' interpolates (the torch generator's draws) matter from the first steps


class _Stop(Exception):
    pass


def _stopping_sampler(after: int):
    """TOY's real sampler that raises on its call number ``after`` + 1 (the first calls
    probe it and draw the eval set), as a machine going away mid-training would."""
    calls = []

    def sample(n, rng):
        calls.append(1)
        if len(calls) > after:
            raise _Stop
        return TOY.sample_real(n, rng)
    return sample


def _params(critic: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in critic.state_dict().values()]


@pytest.mark.parametrize(("constraint", "optimizer", "schedule"), [
    ("lp", "muon", "cosine"), ("gp", "adam", "constant"), ("clip", None, "constant"),
    ("spectral", None, "cosine")])
def test_a_stopped_run_resumes_to_the_critic_of_an_uninterrupted_one(
        tmp_path, constraint, optimizer, schedule):
    if optimizer == "muon" and not hasattr(torch.optim, "Muon"):
        pytest.skip("torch.optim.Muon needs torch >= 2.9")
    kw = {**COMMON, "constraint": constraint, "optimizer": optimizer, "schedule": schedule,
          "lr": FAST[constraint]}
    whole = train_critic(TOY.sample_real, TOY.sample_fake, **kw)
    if constraint in ("lp", "gp"):  # the penalty is active, so its generator counts
        assert any(p > 0 for p in whole.history_penalty[1:])
    path = tmp_path / "state.pt"
    with pytest.raises(_Stop):  # stops mid-training; every step before is saved
        train_critic(_stopping_sampler(8), TOY.sample_fake, checkpoint=path,
                     checkpoint_seconds=0, **kw)
    assert path.exists()
    saved_seconds = torch.load(path, weights_only=True)["seconds"]
    resumed = train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, **kw)
    assert 4 <= resumed.settings["resumed_from_step"] <= 8
    assert resumed.seconds >= saved_seconds > 0  # the time before the stop is counted
    for a, b in zip(_params(whole.critic), _params(resumed.critic), strict=True):
        assert torch.equal(a, b)
    assert resumed.history_step == whole.history_step
    assert resumed.history_estimate == whole.history_estimate
    assert resumed.history_penalty == whole.history_penalty
    # the state at the last step: the trained critic at once, no minibatch drawn (the
    # sampler's first two calls probe it and draw the evaluation set)
    again = train_critic(_stopping_sampler(2), TOY.sample_fake, checkpoint=path, **kw)
    assert again.settings["resumed_from_step"] == 12
    for a, b in zip(_params(whole.critic), _params(again.critic), strict=True):
        assert torch.equal(a, b)


def test_a_state_of_other_settings_is_refused_naming_what_differs(tmp_path):
    path = tmp_path / "state.pt"
    train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, constraint="lp", **COMMON)
    with pytest.raises(ValueError, match=r"checkpoint: .*another run.*batch_size"):
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, constraint="lp",
                     **{**COMMON, "batch_size": 32})
    with pytest.raises(ValueError, match=r"another run.*precision"):
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, constraint="lp",
                     precision="bfloat16", **COMMON)
    with pytest.raises(ValueError, match=r"another run.*critic"):  # ReLU, same shapes
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, constraint="lp",
                     **{**COMMON, "softplus_beta": None})


def test_a_state_that_cannot_be_written_costs_the_state_not_the_training(tmp_path,
                                                                         monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resume_module, "replaced", full)
    with pytest.warns(RuntimeWarning, match="could not be written.*No space left"):
        out = train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=tmp_path / "s.pt",
                           constraint="lp", **COMMON)
    whole = train_critic(TOY.sample_real, TOY.sample_fake, constraint="lp", **COMMON)
    assert out.history_estimate == whole.history_estimate


@pytest.mark.parametrize("content", [b"", b"not torch", None])
def test_a_damaged_state_is_a_value_error_naming_the_argument(tmp_path, content):
    path = tmp_path / "state.pt"
    if content is None:  # a valid torch file that is not a training state
        torch.save({"weights": torch.ones(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint: cannot read the training state"):
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=path, **COMMON)


def test_checkpoint_arguments_are_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="checkpoint"):
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=tmp_path, **COMMON)
    with pytest.raises(ValueError, match="checkpoint"):
        train_critic(TOY.sample_real, TOY.sample_fake,
                     checkpoint=tmp_path / "no" / "such" / "dir.pt", **COMMON)
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        train_critic(TOY.sample_real, TOY.sample_fake, checkpoint=tmp_path / "s.pt",
                     checkpoint_seconds=-1, **COMMON)
    assert list(tmp_path.iterdir()) == []


def test_benchmark_rows_resume_mid_training_and_clean_up(capsys, tmp_path, monkeypatch):
    """A row stopped after its first saved state goes on from it: the row equals an
    uninterrupted run's, and the state is removed once the row is written."""
    common = ["--problems", "translate:2", "--steps", "40", "--n", "40", "--n-estimate", "60",
              "--hidden", "8", "--device", "cpu", "--batch-size", "16"]
    assert benchmark_main([*common, "--json", str(tmp_path / "whole.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())[0]

    real_save, saves = resume_module.save_state, []

    def stop_after_the_first_save(*a, **k):
        real_save(*a, **k)
        saves.append(a[2])  # the step saved
        raise _Stop

    monkeypatch.setattr("otdiv.audit.loop.save_state", stop_after_the_first_save)
    monkeypatch.setattr("otdiv.cli.benchmark_critics.CHECKPOINT_SECONDS", 0.0)
    out = tmp_path / "rows.json"
    with pytest.raises(_Stop):
        benchmark_main([*common, "--json", str(out)])
    states = list((tmp_path / "rows.json.training").iterdir())
    assert saves == [1] and len(states) == 1
    monkeypatch.setattr("otdiv.audit.loop.save_state", real_save)
    import otdiv.audit

    real_train, resumed = otdiv.audit.train_critic, []

    def spy(*a, **k):
        out = real_train(*a, **k)
        resumed.append(out.settings["resumed_from_step"])
        return out

    monkeypatch.setattr(otdiv.audit, "train_critic", spy)
    capsys.readouterr()
    assert benchmark_main([*common, "--json", str(out)]) == 0
    assert resumed == [1]  # from the state, not from the start
    row = json.loads(out.read_text())[0]
    assert row["estimate"] == whole["estimate"] and row["settings"] == whole["settings"]
    assert list((tmp_path / "rows.json.training").iterdir()) == []  # the state is gone
    assert np.isfinite(row["estimate"])


def test_a_resumed_runs_progress_counts_from_where_it_stopped(monkeypatch, capsys):
    import otdiv.audit.progress as progress_module

    monkeypatch.setattr(progress_module, "HEARTBEAT_SECONDS", 0.0)
    with progress_module.progress_reporter(10, None, "critic (lp)", 6) as bar:  # not a tty
        bar.update()
    err = capsys.readouterr().err
    assert "critic (lp): step 7/10 (70 %)" in err and "s left" in err
