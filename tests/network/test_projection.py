"""Projected paths (the noise study's Fig. 1) on toy losses whose valleys are known in closed form."""

import numpy as np
import pytest

from hessian_powerlaw.network.noise.projection import ProjectionError, line_connected, project, projected_path


def flat_valley(theta):
    """L = z^2: every point with z = 0 is a minimum, and the valley is a line (any two minima
    are line connected)."""
    return theta[1] ** 2


def flat_gradient(theta):
    return np.array([0.0, 2 * theta[1]])


def ring(theta):
    """L = (|theta|^2 - 1)^2: the minima form the unit circle, whose chords leave the valley."""
    return (theta @ theta - 1.0) ** 2


def ring_gradient(theta):
    return 4 * (theta @ theta - 1.0) * theta


def test_projection_moves_only_across_the_valley():
    minimum, steps, value = project(np.array([0.7, 0.3]), flat_valley, flat_gradient, lr=0.1, threshold=1e-8)
    assert minimum[0] == 0.7 and abs(minimum[1]) < 1e-4 and value < 1e-8 and steps > 0
    on_ring, _, _ = project(np.array([1.2, 0.9]), ring, ring_gradient, lr=0.05, threshold=1e-10)
    assert np.linalg.norm(on_ring) == pytest.approx(1.0, abs=1e-4)
    assert np.arctan2(on_ring[1], on_ring[0]) == pytest.approx(np.arctan2(0.9, 1.2), abs=1e-12)  # radial


def test_projection_with_the_runs_momentum_stays_across_the_valley_and_is_faster():
    start = np.array([0.7, 0.3])
    _, plain, _ = project(start, flat_valley, flat_gradient, lr=0.01, threshold=1e-8)
    minimum, heavy, value = project(start, flat_valley, flat_gradient, lr=0.01, threshold=1e-8, momentum=0.9)
    assert minimum[0] == 0.7 and value < 1e-8 and heavy < plain / 3
    with pytest.raises(ProjectionError, match="momentum"):
        project(start, flat_valley, flat_gradient, lr=0.01, threshold=1e-8, momentum=1.0)


def test_projection_that_cannot_reach_the_threshold_says_so():
    with pytest.raises(ProjectionError, match="descent steps left the loss"):
        project(np.array([0.0, 1.0]), flat_valley, flat_gradient, lr=1e-6, threshold=1e-8, max_steps=10)
    with pytest.raises(ProjectionError, match="loss became"):
        project(np.array([1.0, 1.0]), ring, ring_gradient, lr=10.0, threshold=1e-10, max_steps=50)


def test_line_connectedness_on_the_two_valleys():
    assert line_connected(np.array([-3.0, 0.0]), np.array([5.0, 0.0]), flat_valley, 1e-8)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])  # a quarter circle apart: the chord dips to 0.5
    assert not line_connected(a, b, ring, 1e-3)
    close = np.array([np.cos(0.01), np.sin(0.01)])
    assert line_connected(a, close, ring, 1e-3)


def _orbit(iteration):
    """A run circling the ring slightly outside it: angle iteration / 100."""
    angle = iteration / 100.0
    return 1.05 * np.array([np.cos(angle), np.sin(angle)])


def test_bisection_inserts_states_until_consecutive_minima_are_connected():
    states = [(0, _orbit(0)), (400, _orbit(400))]  # 4 rad apart: far from line connected
    calls = []

    def between(a, theta_a, b):
        calls.append((a, b))
        return _orbit((a + b) // 2)  # re-running the segment from a (closed form here)

    cache = {}
    rows = projected_path(states, between, ring, ring_gradient, lr=0.05, threshold=1e-4, cache=cache)
    iterations = [r["iteration"] for r in rows]
    assert iterations == sorted(iterations) and iterations[0] == 0 and iterations[-1] == 400
    assert calls and len(iterations) == len(calls) + 2
    for row, following in zip(rows[:-1], rows[1:], strict=True):
        assert row["connected_to_next"] or following["iteration"] - row["iteration"] <= 1
        assert line_connected(row["minimum"], following["minimum"], ring, 1e-4) == row["connected_to_next"]
    assert rows[-1]["connected_to_next"] is None
    for row in rows:  # each projection is the radial one onto the circle
        assert np.linalg.norm(row["minimum"]) == pytest.approx(1.0, abs=1e-2)
        angle = np.arctan2(row["minimum"][1], row["minimum"][0])
        assert np.cos(angle - row["iteration"] / 100) == pytest.approx(1.0, abs=1e-9)
    again = projected_path(states, between, ring, ring_gradient, lr=0.05, threshold=1e-4, cache=cache)
    assert [r["iteration"] for r in again] == iterations  # a resumed run reuses every projection
    assert len(calls) == 2 * (len(iterations) - 2)


def test_a_valley_that_is_a_line_needs_no_bisection():
    rng = np.random.default_rng(0)
    states = [(i, np.array([0.01 * i, 0.3 * rng.standard_normal()])) for i in range(0, 500, 100)]
    rows = projected_path(
        states, lambda *_: pytest.fail("no bisection"), flat_valley, flat_gradient, 0.1, 1e-8
    )
    assert [r["iteration"] for r in rows] == [0, 100, 200, 300, 400]
    assert all(r["connected_to_next"] for r in rows[:-1])


def test_network_projected_path_records_resume_from_the_cache(tmp_path):
    """The small network, a short SGD run on 60 images: every projected minimum has a loss
    below the run's lowest, a finite trace and validation loss; the rows are consistent with
    line connectedness; a second call reads every projection from the saved cache."""
    from hessian_powerlaw.network.noise.paths import Run, SavedCache, path_records

    run = Run(init_seed=0, lr=0.1, momentum=0.9, batch_size=10, seed=0, n_train=60)
    cache = SavedCache(tmp_path / "cache.npz")
    rows = path_records(run, steps=40, every=20, cache=cache, max_steps=5000)
    threshold = min(run.loss(theta) for _, theta in run.states(40, 20))
    assert [r["iteration"] for r in rows][0] == 0 and rows[-1]["iteration"] == 40
    for row, following in zip(rows[:-1], rows[1:], strict=True):
        assert row["loss"] < threshold and np.isfinite(row["trace"]) and np.isfinite(row["val_loss"])
        joined = line_connected(
            cache[row["iteration"]][0], cache[following["iteration"]][0], run.loss, threshold
        )
        assert joined == row["connected_to_next"]
    saved = SavedCache(tmp_path / "cache.npz")
    assert sorted(saved) == sorted(cache)
    again = path_records(Run(0, 0.1, 0.9, 10, 0, n_train=60), steps=40, every=20, cache=saved, max_steps=1)
    assert [r["loss"] for r in again] == [r["loss"] for r in rows]  # no projection re-run (max_steps=1)


def test_bisection_stops_at_the_minimum_gap():
    states = [(0, _orbit(0)), (400, _orbit(400))]
    between = lambda a, theta_a, b: _orbit((a + b) // 2)  # noqa: E731
    full = projected_path(states, between, ring, ring_gradient, lr=0.05, threshold=1e-4)
    capped = projected_path(states, between, ring, ring_gradient, lr=0.05, threshold=1e-4, min_gap=50)
    gaps = np.diff([r["iteration"] for r in capped])
    assert len(capped) < len(full) and gaps.max() <= 50 and gaps.min() > 1
    with pytest.raises(ProjectionError, match="min_gap"):
        projected_path(states, between, ring, ring_gradient, lr=0.05, threshold=1e-4, min_gap=0)
