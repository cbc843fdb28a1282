"""train_critic from Python: threads chosen inside the loop, subnormal floats flushed (and in
the audit's passes), progress, and sizes refused early. Tiny critics and few steps: each
case runs well under a second."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
import torch

import otdiv.audit.progress as progress_module
import otdiv.audit.threads as threads_module
from otdiv.audit.threads import AUTO_ONE_THREAD_WORK, resolve_threads
from otdiv.audit.train import train_critic


class _Spy(torch.nn.Module):
    """A linear critic that records torch's thread count at every training forward pass."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.seen: set[int] = set()

    def forward(self, x):
        if self.training:
            self.seen.add(torch.get_num_threads())
        return self.lin(x)


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (None, 3), (2, 2)])
def test_threads_are_set_inside_the_loop_and_restored(threads, inside):
    x = np.random.default_rng(0).normal(size=(50, 2))
    torch.set_num_threads(3)
    spy = _Spy()
    train_critic(x, x + 1, critic=spy, steps=5, batch_size=8, device="cpu", seed=0,
                 progress=False, threads=threads)
    assert spy.seen == {inside}
    assert torch.get_num_threads() == 3


def test_auto_threads_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_threads("auto", cpu, 256, 3 * 512 * 512) == 1  # 3 x 512 at batch 256
    assert resolve_threads("auto", cpu, 256, AUTO_ONE_THREAD_WORK // 256 + 1) is None
    assert resolve_threads("auto", cuda, 256, 10) is None
    for bad in ("many", 0, -1, 1.5):
        with pytest.raises((TypeError, ValueError), match="threads"):
            resolve_threads(bad, cpu, 256, 10)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
def test_auto_threads_take_one_flushed_thread_for_a_softplus_critic():
    # above the work threshold a Softplus critic still gets one (flushed) thread while torch
    # runs at most AUTO_FLUSH_THREADS; a ReLU critic, or more threads, keep torch's setting
    from otdiv.audit.subnormals import AUTO_FLUSH_THREADS

    cpu, big = torch.device("cpu"), AUTO_ONE_THREAD_WORK // 256 + 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert resolve_threads("auto", cpu, 256, big, subnormals=True) == 1
        assert resolve_threads("auto", cpu, 256, big, subnormals=False) is None
        assert resolve_threads(None, cpu, 256, big, subnormals=True) is None
        assert resolve_threads(3, cpu, 256, big, subnormals=True) == 3
        assert resolve_threads("auto", torch.device("cuda"), 256, big, subnormals=True) is None
        torch.set_num_threads(AUTO_FLUSH_THREADS + 1)
        assert resolve_threads("auto", cpu, 256, big, subnormals=True) is None
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
@pytest.mark.parametrize(("beta", "flushed"), [(30.0, True), (1.0, False), (None, False)])
def test_auto_threads_in_training_follow_the_critic(beta, flushed, monkeypatch):
    # past the work threshold (set to 0 here) train_critic's "auto" takes one flushed thread
    # for a Softplus(30) critic, and leaves torch's 2 threads to Softplus(1) and ReLU
    monkeypatch.setattr(threads_module, "AUTO_ONE_THREAD_WORK", 0)
    before = torch.get_num_threads()
    torch.set_flush_denormal(False)
    try:
        torch.set_num_threads(2)
        x = np.random.default_rng(0).normal(size=(50, 2))
        trained = train_critic(x, x + 1, steps=2, batch_size=8, hidden=(4,),
                               softplus_beta=beta, device="cpu", seed=0, progress=False)
        assert trained.settings["subnormals_flushed"] is flushed
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
@pytest.mark.parametrize("mode", [False, True])
def test_flush_support_probe_leaves_the_mode_as_found(mode):
    from otdiv.audit.subnormals import flush_supported

    flush_supported.cache_clear()
    torch.set_flush_denormal(mode)
    try:
        assert flush_supported() is True
        assert _subnormal_survives() is not mode
    finally:
        torch.set_flush_denormal(False)


def test_threads_restored_when_training_fails():
    torch.set_num_threads(3)

    class Boom(torch.nn.Linear):
        def forward(self, x):
            if self.training:
                raise RuntimeError("boom")
            return super().forward(x)

    x = np.zeros((10, 2))
    with pytest.raises(RuntimeError, match="boom"):
        train_critic(x, x + 1, critic=Boom(2, 1), steps=3, batch_size=4, device="cpu",
                     progress=False)
    assert torch.get_num_threads() == 3


def _subnormal_survives() -> bool:
    # an independent probe of the CPU's mode: float32's smallest normal, halved
    tiny = torch.tensor([torch.finfo(torch.float32).tiny])
    return bool((tiny / 2).item() > 0.0)


class _DenormalSpy(torch.nn.Linear):
    """A linear critic that records, at every training forward pass (at every pass with
    ``every_pass``: the audit evaluates and differentiates it), whether subnormal floats
    survive."""

    def __init__(self, every_pass: bool = False):
        super().__init__(2, 1)
        self.every_pass = every_pass
        self.seen: set[bool] = set()

    def forward(self, x):
        if self.training or self.every_pass:
            self.seen.add(_subnormal_survives())
        return super().forward(x)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
@pytest.mark.parametrize("before", [False, True])
@pytest.mark.parametrize("fails", [False, True])
def test_subnormals_are_flushed_inside_the_loop_and_the_mode_restored(before, fails):
    # the training loop flushes subnormal floats (a Softplus critic's slow path) and leaves
    # the caller's mode as it found it, on success and on an error
    torch.set_flush_denormal(before)
    try:
        assert _subnormal_survives() is not before
        spy = _DenormalSpy()
        if fails:
            spy.register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))
                                      if spy.training else None)
        x = np.random.default_rng(0).normal(size=(50, 2))
        if fails:
            with pytest.raises(RuntimeError, match="boom"):
                train_critic(x, x + 1, critic=spy, steps=3, batch_size=8, device="cpu",
                             seed=0, progress=False)
        else:
            trained = train_critic(x, x + 1, critic=spy, steps=3, batch_size=8,
                                   device="cpu", seed=0, progress=False)
            assert trained.settings["subnormals_flushed"] is True
        assert spy.seen == {False}  # flushed in every training pass, whatever the caller's
        assert _subnormal_survives() is not before
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
def test_several_threads_train_unflushed_and_leave_no_pool_thread_flushing():
    # pool threads started inside a flushed block would inherit the mode and keep it after
    # the block: with more than one thread the loop does not flush at all
    torch.set_flush_denormal(False)
    before = torch.get_num_threads()
    try:
        spy = _DenormalSpy()
        x = np.random.default_rng(0).normal(size=(50, 2))
        trained = train_critic(x, x + 1, critic=spy, steps=3, batch_size=8, device="cpu",
                               seed=0, progress=False, threads=2)
        assert spy.seen == {True} and trained.settings["subnormals_flushed"] is False
        torch.set_num_threads(2)
        halves = torch.full((1 << 22,), torch.finfo(torch.float32).tiny) / 2
        assert bool((halves > 0).all())  # every thread's share of the product kept them
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test; torch's threads and the CPU's mode (unflushed)
    restored after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _shifted_pair(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 1


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
@pytest.mark.parametrize("before", [False, True])
def test_audit_passes_of_a_module_are_flushed_and_the_mode_restored(before, one_thread):
    # audit_critic's scores and gradient passes over a torch module run flushed on one
    # thread, and give the same numbers as unflushed (a linear critic makes no subnormal)
    from otdiv.audit import audit_critic

    x, y = _shifted_pair(60)
    torch.set_flush_denormal(before)
    spy = _DenormalSpy(every_pass=True)
    with torch.no_grad():  # f(z) = −(z₁ + z₂/2): an estimate near 1.5, slope √1.25
        spy.weight.copy_(torch.tensor([[-1.0, -0.5]]))
        spy.bias.zero_()
    a = audit_critic(spy, x, y, n=60, repeats=1, lipschitz=False, device="cpu", seed=0)
    assert spy.seen == {False}
    assert _subnormal_survives() is not before
    # several threads: not flushed, the same numbers (the mode off first: a torch pool
    # started here would inherit the main thread's mode and keep it past the test)
    torch.set_flush_denormal(False)
    torch.set_num_threads(2)
    spy.seen.clear()
    b = audit_critic(spy, x, y, n=60, repeats=1, lipschitz=False, device="cpu", seed=0)
    assert spy.seen == {True}
    assert b.estimate == pytest.approx(a.estimate, rel=1e-5)
    assert a.grad_norm == pytest.approx(np.hypot(1.0, 0.5), rel=1e-6)
    assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-6)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="no flush-to-zero on this CPU")
def test_audit_leaves_a_plain_callable_unflushed(one_thread):
    # a callable that is not a torch module may start thread pools of its own, which would
    # inherit the mode: it runs as the caller left the CPU
    from otdiv.audit import audit_critic

    seen: set[bool] = set()

    def critic(z):
        seen.add(_subnormal_survives())
        return -z.sum(dim=1)

    x, y = _shifted_pair(40)
    torch.set_flush_denormal(False)
    audit_critic(critic, x, y, n=40, repeats=1, lipschitz=False, device="cpu", seed=0)
    assert seen == {True}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_heartbeat_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "HEARTBEAT_SECONDS", 0.0)  # a line per step
    x = np.random.default_rng(0).normal(size=(50, 2))
    train_critic(x, x + 1, steps=6, hidden=(4,), batch_size=8, eval_every=2, device="cpu",
                 seed=0)  # progress=None: stderr is captured, not a terminal
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5  # steps 1..5; the last step prints nothing
    pattern = (r"critic \(gp\): step (\d)/6 \(\d+ %\)(, estimate -?\d\.\d{4})?, \d+ s "
               r"elapsed, ~\d+ s left")
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert [int(re.match(pattern, line).group(1)) for line in lines] == [1, 2, 3, 4, 5]
    assert "estimate" in lines[-1]
    train_critic(x, x + 1, steps=6, hidden=(4,), device="cpu", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    x = np.random.default_rng(0).normal(size=(50, 2))
    train_critic(x, x + 1, steps=6, hidden=(4,), batch_size=8, device="cpu", seed=0)
    text = term.getvalue()
    assert re.search(r"critic \(gp\): +\d+%\|", text)  # tqdm's bar, not a heartbeat
    assert "elapsed" not in text


# ------------------------------------------------------------------ hostile inputs


@pytest.mark.parametrize("seed", ["a", 1.5, -1, 2**70, True])
def test_audit_critic_checks_the_seed_first(seed):
    from otdiv.audit import audit_critic

    with pytest.raises((TypeError, ValueError), match="seed"):
        audit_critic(None, None, None, seed=seed)  # nothing else is looked at first


@pytest.mark.parametrize("seed", ["a", 1.5, -1, 2**70])
def test_train_critic_checks_the_seed(seed):
    x = np.zeros((10, 2))
    with pytest.raises((TypeError, ValueError), match="seed"):
        train_critic(x, x + 1, steps=1, hidden=(2,), seed=seed, progress=False)


@pytest.mark.parametrize("training", [True, False])
def test_audit_critic_restores_the_modules_modes(training):
    from otdiv.audit import audit_critic, mlp_critic

    critic = mlp_critic(2, (8,))
    critic.train(training)
    critic[1].train(not training)  # a mixed state is restored as it was
    before = [m.training for m in critic.modules()]
    x = np.random.default_rng(0).normal(size=(40, 2))
    audit_critic(critic, x, x + 1, n=20, repeats=1, lipschitz=False, envelope=False,
                 device="cpu")
    assert [m.training for m in critic.modules()] == before


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"batch_size": 10**12}, "batch_size"),
    ({"hidden": (10**6, 10**6)}, "hidden"),
    ({"eval_size": 10**11}, "eval_size"),
    ({"steps": 10**12}, "steps"),
    ({"lr": 1e300}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": 0.0}, "lr"),
    ({"lr": -1e-3}, "lr"), ({"lr": float("inf")}, "lr"),
])
def test_train_critic_refuses_sizes_with_no_limit(kwargs, name):
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match=name):
        train_critic(x, x + 1, progress=False, **{"steps": 1, **kwargs})


def test_train_critic_refuses_a_huge_dimension_before_building_the_critic():
    def wide(n, rng):
        return np.zeros((n, 10**6))

    with pytest.raises(ValueError, match=r"^d=1000000 needs about .* GiB"):
        train_critic(wide, wide, steps=1, hidden=(4096,), progress=False)


def test_memory_estimate_is_the_parameter_count():
    from otdiv.audit import mlp_critic
    from otdiv.audit.models import training_bytes

    params = sum(p.numel() for p in mlp_critic(5, (7, 3)).parameters())
    assert training_bytes(5, (7, 3), 0, 0) == (16 * params, 0)


def test_audit_critic_refuses_n_beyond_the_budget():
    from otdiv.audit import audit_critic

    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"^n=1000000000000 needs about"):
        audit_critic(lambda t: t[:, 0], x, x, n=10**12)
    # the Lipschitz bounds take at most the first draw's 2 n points, so a large
    # lipschitz_points costs no more than that (it was charged in full, naming n)
    a = audit_critic(lambda t: t[:, 0], np.random.default_rng(0).standard_normal((30, 2)),
                     np.random.default_rng(1).standard_normal((30, 2)), n=20,
                     lipschitz_points=10**9, device="cpu", seed=0)
    assert a.lipschitz_lower is not None
    with pytest.raises(ValueError, match=r"^n_estimate=1000000000000 needs about"):
        audit_critic(lambda t: t[:, 0], x, x, n=20, n_estimate=10**12)


def _bad_checkpoints(tmp_path):
    from otdiv.audit import mlp_critic, save_critic

    path = tmp_path / "good.pt"
    save_critic(mlp_critic(2, (4,)), str(path))
    good = torch.load(path, weights_only=True)
    cases = {}
    for name, change in [
        ("bias_shape", lambda p: p["biases"].__setitem__(0, torch.zeros(3))),
        ("float_bias", lambda p: p["biases"].__setitem__(0, 1.5)),
        ("float_weight", lambda p: p["weights"].__setitem__(1, 0.5)),
        ("no_biases", lambda p: p.pop("biases")),
        ("short_biases", lambda p: p["biases"].pop()),
    ]:
        payload = {k: list(v) if isinstance(v, list) else v for k, v in good.items()}
        change(payload)
        torch.save(payload, tmp_path / f"{name}.pt")
        cases[name] = tmp_path / f"{name}.pt"
    state = mlp_critic(2, (4,)).state_dict()
    state["0.bias"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "state_bias.pt")
    cases["state_bias"] = tmp_path / "state_bias.pt"
    return cases


def test_broken_checkpoints_are_a_value_error_naming_the_file(tmp_path):
    from otdiv.audit import load_critic

    for name, path in _bad_checkpoints(tmp_path).items():
        with pytest.raises(ValueError, match=re.escape(str(path))) as info:
            load_critic(str(path))
        assert len(str(info.value).splitlines()) == 1, name
    with pytest.raises(ValueError, match="directory"):
        load_critic(str(tmp_path))


@pytest.mark.parametrize("constraint", ["clip", "gp", "lp", "spectral"])
def test_the_same_seed_trains_the_same_critic_and_leaves_torchs_rng_alone(constraint):
    """seed= fixes everything random in training (initialisation, minibatches, interpolates
    and, for spectral normalisation, the power iteration's start vectors) without drawing on
    torch's global RNG: two runs in one process give identical weights, another seed
    another critic."""
    import torch

    from otdiv.audit import make_toy, train_critic

    toy = make_toy("translate", d=2)

    def weights(seed):
        critic = train_critic(toy.sample_real, toy.sample_fake, constraint=constraint,
                              steps=15, batch_size=32, hidden=(8, 8), device="cpu",
                              seed=seed, progress=False).critic
        return [p.detach().clone() for p in critic.state_dict().values()]

    before = torch.random.get_rng_state()
    first, again, other = weights(0), weights(0), weights(1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_the_names_train_py_held_stay_importable_from_it():
    # train.py's checks and constants moved to recipe.py and its loop to loop.py
    # (2026-12-06); `from otdiv.audit.train import ...` of any of them keeps working
    import otdiv.audit.loop as loop
    import otdiv.audit.recipe as recipe
    import otdiv.audit.train as train

    for name in ("CONSTRAINTS", "DEFAULTS", "MAX_STEPS", "PRECISIONS", "SCHEDULES",
                 "check_precision", "check_steps"):
        assert getattr(train, name) is getattr(recipe, name), name
    assert train.TrainedCritic is loop.TrainedCritic
    assert train.train_critic is __import__("otdiv").train_critic
