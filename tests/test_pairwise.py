"""otdiv.pairwise: the matrix of a metric between point clouds, on a real Dask LocalCluster.

The truth is the serial loop a user would write, ``metric(xs[i], ys[j], **options)``, run
in this process; the cluster runs the same calls in other processes (one thread each), so
entries agree to the rounding of a kernel's summation order (rtol 1e-12), and exactly in
this process.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

import otdiv
from otdiv.metrics.pairwise import MAX_TASKS, METRICS, _batches
from otdiv.metrics.pairwise import _metric as REAL_METRIC

pytest.importorskip("distributed")  # the whole module runs on Dask (conftest.client)

OPTIONS = {"wasserstein": {}, "sinkhorn": {"eps": 0.5}, "sinkhorn_divergence": {"eps": 0.5},
           "sliced_wasserstein": {"seed": 3, "n_projections": 20}, "kl_knn": {"k": 2},
           "jsd_knn": {"seed": 1}}


def clouds(count: int, seed: int) -> list[np.ndarray]:
    """Clouds of different sizes and places (no repeated points: the k-NN estimators)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(12, 40)), 2)) * (1 + 0.3 * i) + 0.5 * i
            for i in range(count)]


def serial(xs, ys, metric, options, *, square):
    """The loop: every entry (i, j) on its own; the square case as pairwise defines it."""
    fn = getattr(otdiv, metric)
    _, zero_diagonal, symmetric = METRICS[metric]
    out = np.zeros((len(xs), len(ys)))
    for i in range(len(xs)):
        for j in range(len(ys)):
            if square and i == j and zero_diagonal:
                continue
            if square and i > j and symmetric:
                out[i, j] = out[j, i]
                continue
            out[i, j] = fn(xs[i], ys[j], **options)
    return out


@pytest.mark.parametrize("metric", list(METRICS))
def test_matches_serial_loop_on_a_cluster(client, metric):
    xs, ys = clouds(6, 0), clouds(3, 1)
    options = OPTIONS[metric]
    square = otdiv.pairwise(xs, metric=metric, client=client, progress=False, **options)
    rect = otdiv.pairwise(xs, ys, metric=metric, client=client, progress=False, **options)
    np.testing.assert_allclose(square, serial(xs, xs, metric, options, square=True),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rect, serial(xs, ys, metric, options, square=False),
                               rtol=1e-12, atol=1e-14)
    assert square.shape == (6, 6) and rect.shape == (6, 3)
    if METRICS[metric][2]:
        np.testing.assert_array_equal(square, square.T)


@pytest.mark.parametrize("metric", ["wasserstein", "kl_knn"])
def test_in_process_is_the_serial_loop_bit_for_bit(metric):
    xs, ys = clouds(4, 2), clouds(2, 3)
    options = OPTIONS[metric]
    got = otdiv.pairwise(xs, ys, metric=metric, progress=False, **options)
    np.testing.assert_array_equal(got, serial(xs, ys, metric, options, square=False))
    got = otdiv.pairwise(xs, metric=metric, progress=False, **options)
    np.testing.assert_array_equal(got, serial(xs, xs, metric, options, square=True))


def test_address_string_and_torch_clouds(client):
    torch = pytest.importorskip("torch")
    xs = clouds(3, 4)
    got = otdiv.pairwise([torch.as_tensor(x) for x in xs], metric="wasserstein",
                         client=client.scheduler.address, progress=False)
    np.testing.assert_allclose(got, serial(xs, xs, "wasserstein", {}, square=True),
                               rtol=1e-12)


def test_batches_cover_every_pair_once_in_order():
    rng = np.random.default_rng(0)
    for n_pairs, threads, scale in [(1, 1, 0.02), (7, 2, 0.02), (100, 2, 0.02),
                                    (1000, 8, 0.02), (120_000, 3200, 5.0)]:
        cost = list(rng.exponential(scale, n_pairs))
        batches = _batches([(0, k) for k in range(n_pairs)], cost, threads)
        assert [k for b in batches for k in b] == list(range(n_pairs))
        least = -(-n_pairs // MAX_TASKS)
        cap = max(least, -(-n_pairs // (4 * threads)))
        assert len(batches) <= MAX_TASKS and all(len(b) <= cap for b in batches)
        for b in batches[:-1]:  # each closes on its work and size, or on the share cap
            assert (sum(cost[k] for k in b) >= 0.1 and len(b) >= least) or len(b) == cap


def test_unreachable_scheduler_is_one_quick_error():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        otdiv.pairwise(clouds(2, 0), client="tcp://127.0.0.1:1", progress=False)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"metric": "euclid"}, ValueError, "metric must be one of"),
    ({"metric": "sinkhorn"}, TypeError, "eps"),
    ({"q": 2}, TypeError, "q"),
    ({"a": np.ones(3)}, TypeError, "uniform weights"),
    ({"client": 3}, TypeError, "client"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        otdiv.pairwise(clouds(3, 0), progress=False, **kwargs)


def test_bad_clouds_are_named():
    xs = clouds(3, 0)
    with pytest.raises(TypeError, match="xs must be a sequence"):
        otdiv.pairwise(xs[0])
    with pytest.raises(ValueError, match="xs is empty"):
        otdiv.pairwise([])
    with pytest.raises(ValueError, match=r"xs\[1\]"):
        otdiv.pairwise([xs[0], np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"ys\[0\]"):
        otdiv.pairwise(xs, [np.full((4, 2), np.nan)])
    with pytest.raises(ValueError, match=r"xs\[1\] vs ys\[0\]: x has repeated points"):
        otdiv.pairwise([xs[0], np.zeros((5, 2))], xs[1:2], metric="kl_knn", progress=False)


def _interrupted_after(monkeypatch, calls: int):
    """Make the metric raise KeyboardInterrupt on its call number ``calls`` + 1 (in this
    process), counting the calls made."""
    import otdiv.metrics.pairwise as pw

    real, made = REAL_METRIC, []

    def metric(name):
        fn = real(name)

        @functools.wraps(fn)
        def counted(*a, **k):
            if len(made) == calls:
                raise KeyboardInterrupt
            made.append(1)
            return fn(*a, **k)
        return counted

    monkeypatch.setattr(pw, "_metric", metric)
    monkeypatch.setattr(pw, "MIN_TASK_SECONDS", 0.0)  # one pair a batch: a batch is a pair
    return made


def test_a_checkpoint_keeps_what_an_interrupted_call_solved(monkeypatch, tmp_path):
    """Interrupted after 4 of the 6 pairs of a square 4 x 4 matrix, the checkpoint holds
    those 4 entries and their mirror images (exact W1 by POT); the same call again solves
    only the 2 it lacks and returns the serial loop's matrix; other clouds or options are
    refused by name."""
    ot = pytest.importorskip("ot")
    xs, path = clouds(4, 5), tmp_path / "D.npz"
    made = _interrupted_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        otdiv.pairwise(xs, progress=False, checkpoint=path)
    with np.load(path) as f:
        solved, values = f["solved"], f["values"]
    assert np.triu(solved).sum() == 4 and not solved.diagonal().any()
    np.testing.assert_array_equal(solved, solved.T)           # mirrored, as returned
    for i, j in zip(*np.nonzero(solved), strict=True):
        a, b = np.full(len(xs[i]), 1 / len(xs[i])), np.full(len(xs[j]), 1 / len(xs[j]))
        assert values[i, j] == pytest.approx(ot.emd2(a, b, ot.dist(xs[i], xs[j],
                                                                   metric="euclidean")))
    made = _interrupted_after(monkeypatch, 100)
    got = otdiv.pairwise(xs, progress=False, checkpoint=path)
    assert len(made) == 2
    np.testing.assert_array_equal(got, serial(xs, xs, "wasserstein", {}, square=True))
    with pytest.raises(ValueError, match=r"checkpoint: .*another matrix"):
        otdiv.pairwise([*xs[:3], xs[3] + 1e-9], progress=False, checkpoint=path)
    with pytest.raises(ValueError, match=r"checkpoint: .*another matrix"):
        otdiv.pairwise(xs, metric="sliced_wasserstein", seed=1, progress=False,
                       checkpoint=path)


def test_a_checkpoint_on_a_cluster_resumes_to_the_serial_loop(client, tmp_path):
    xs, ys, path = clouds(5, 6), clouds(3, 7), tmp_path / "D.npz"
    first = otdiv.pairwise(xs, ys, client=client, progress=False, checkpoint=path)
    with np.load(path) as f:
        assert f["solved"].all()
        np.testing.assert_array_equal(f["values"], first)
    truth = serial(xs, ys, "wasserstein", {}, square=False)
    np.testing.assert_allclose(first, truth, rtol=1e-12)
    # a file that lacks column 0 and holds marked values elsewhere: the call solves column 0
    # on the cluster and reads the rest back (the marks come back, nothing else is solved)
    with np.load(path) as f:
        key, values, solved = f["key"], f["values"] + 100.0, f["solved"].copy()
    solved[:, 0], values[:, 0] = False, 0.0
    with open(path, "wb") as fh:
        np.savez(fh, key=key, values=values, solved=solved)
    again = otdiv.pairwise(xs, ys, client=client, progress=False, checkpoint=path)
    np.testing.assert_allclose(again[:, 0], truth[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(again[:, 1:], values[:, 1:])


@pytest.mark.parametrize("make", ["directory", "garbage", "missing folder"])
def test_a_bad_checkpoint_is_a_value_error_naming_it_before_any_work(make, tmp_path):
    path = {"directory": tmp_path, "garbage": tmp_path / "D.npz",
            "missing folder": tmp_path / "nowhere" / "D.npz"}[make]
    if make == "garbage":
        path.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="checkpoint"):
        otdiv.pairwise(clouds(3, 0), progress=False, checkpoint=path)


def test_a_checkpoint_is_the_returned_matrix_and_matches_equal_options(monkeypatch, tmp_path):
    """The file of a square symmetric matrix holds it mirrored, as returned; the same
    options written another way (numpy scalar, an explicit default) resume it; a call its
    metric refuses leaves no file that would block the corrected call."""
    xs, path = clouds(4, 8), tmp_path / "S.npz"
    with pytest.raises(ValueError, match="eps"):
        otdiv.pairwise(xs, metric="sinkhorn_divergence", eps=-1.0, progress=False,
                       checkpoint=path)
    assert not path.exists()
    first = otdiv.pairwise(xs, metric="sinkhorn_divergence", eps=0.5, progress=False,
                           checkpoint=path)
    with np.load(path) as f:
        np.testing.assert_array_equal(f["values"], first)
        assert f["solved"].sum() == 12            # every entry off the diagonal
    made = _interrupted_after(monkeypatch, 0)      # any solve would raise
    again = otdiv.pairwise(xs, metric="sinkhorn_divergence", eps=np.float64(0.5), p=2,
                           progress=False, checkpoint=path)
    assert not made
    np.testing.assert_array_equal(again, first)


def test_a_checkpoint_that_cannot_be_written_warns_and_the_matrix_is_returned(
        monkeypatch, tmp_path):
    import otdiv.metrics._matrix_file as matrix_file

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matrix_file, "replaced", full_disk)
    xs = clouds(3, 9)
    with pytest.warns(RuntimeWarning, match="checkpoint: could not write"):
        got = otdiv.pairwise(xs, progress=False, checkpoint=tmp_path / "D.npz")
    np.testing.assert_array_equal(got, serial(xs, xs, "wasserstein", {}, square=True))


@pytest.mark.parametrize("bad", [True, 3, ["D.npz"]])
def test_a_checkpoint_that_is_not_a_path_is_a_type_error_naming_it(bad):
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        otdiv.pairwise(clouds(3, 0), progress=False, checkpoint=bad)
