"""The noise study's projected paths (its Fig. 1 and Fig. 3): is SGD moving inside a valley of
connected, degenerate minima?

Every state of a run is projected to a nearby minimum by gradient descent from it (the run's own
step size, no noise) until the loss is below a threshold; consecutive projected minima are
*line connected* when the loss stays below the threshold at evenly spaced points of the segment
between them; where they are not, the run is bisected: the state halfway between the two (by
iteration; training is bit-identical on one machine, so a caller re-runs the segment) is
inserted and projected, recursively, until every consecutive pair is connected or adjacent
(or, to bound the cost, at most `min_gap` iterations apart: the paper bisects to adjacent).

Numpy only, over flat parameter vectors and callables, so that the same code serves a toy
valley with a closed form (the tests) and a network (a caller supplies the loss, its gradient
and the way to re-run a segment). Projections are kept in `cache` ({iteration: (minimum, steps,
loss)}, any mapping), so that a caller that saves it can resume a killed run.
"""

from collections.abc import Callable, Iterable

import numpy as np


class ProjectionError(ValueError):
    """A state from which gradient descent does not reach the threshold, or bad settings."""


def project(
    theta: np.ndarray,
    loss: Callable[[np.ndarray], float],
    gradient: Callable[[np.ndarray], np.ndarray],
    lr: float,
    threshold: float,
    max_steps: int = 100_000,
    momentum: float = 0.0,
) -> tuple[np.ndarray, int, float]:
    """(minimum, steps, final loss): full-batch gradient descent (heavy ball with `momentum`,
    the run's own, as the paper's projection keeps every hyper-parameter but the noise) from
    `theta` (shape (n,)) at step `lr` until loss(theta) < threshold; ProjectionError when
    `max_steps` do not get there or the loss stops being finite."""
    if not (lr > 0 and threshold > 0 and max_steps >= 1 and 0 <= momentum < 1):
        raise ProjectionError(
            f"need lr, threshold > 0, max_steps >= 1 and 0 <= momentum < 1 (got {lr}, {threshold}, "
            f"{max_steps}, {momentum})"
        )
    theta = np.array(theta, dtype=float)
    velocity = np.zeros_like(theta)
    for step in range(max_steps + 1):
        value = float(loss(theta))
        if not np.isfinite(value):
            raise ProjectionError(
                f"the loss became {value} after {step} descent steps (lr {lr:g} too large?)"
            )
        if value < threshold:
            return theta, step, value
        velocity = momentum * velocity + np.asarray(gradient(theta), dtype=float)
        theta = theta - lr * velocity
    raise ProjectionError(
        f"{max_steps} descent steps left the loss at {value:.4g}, not below {threshold:.4g}"
    )


def line_connected(
    a: np.ndarray, b: np.ndarray, loss: Callable[[np.ndarray], float], threshold: float, points: int = 10
) -> bool:
    """Whether the loss is below `threshold` at `points` evenly spaced points of the segment
    from a to b (both ends included)."""
    return all(float(loss((1 - t) * a + t * b)) < threshold for t in np.linspace(0.0, 1.0, points))


def projected_path(
    states: Iterable[tuple[int, np.ndarray]],
    between: Callable[[int, np.ndarray, int], np.ndarray],
    loss: Callable[[np.ndarray], float],
    gradient: Callable[[np.ndarray], np.ndarray],
    lr: float,
    threshold: float,
    cache: dict | None = None,
    points: int = 10,
    max_steps: int = 100_000,
    momentum: float = 0.0,
    min_gap: int = 1,
) -> list[dict]:
    """Rows {iteration, minimum, steps, loss, connected_to_next} of the projected path, in
    iteration order, bisecting unconnected segments.

    states: [(iteration, theta)] of the run (any order, distinct integer iterations);
    between(iteration_a, theta_a, iteration_b) -> theta at (iteration_a + iteration_b) // 2,
    re-running the run from state a. A pair whose iterations are at most `min_gap` apart (1:
    adjacent) ends the bisection (connected_to_next says whether it is connected)."""
    if not (isinstance(min_gap, int) and min_gap >= 1):
        raise ProjectionError(f"min_gap must be a positive integer, got {min_gap!r}")
    cache = {} if cache is None else cache
    known = {int(i): np.asarray(theta, dtype=float) for i, theta in states}
    if len(known) != len(states):
        raise ProjectionError("two states share an iteration")

    def projected(iteration):
        if iteration not in cache:
            cache[iteration] = project(known[iteration], loss, gradient, lr, threshold, max_steps, momentum)
        return cache[iteration][0]

    order = sorted(known)
    stack = [(a, b) for a, b in zip(order[:-1], order[1:], strict=True)][::-1]
    linked = {}
    while stack:
        a, b = stack.pop()
        joined = line_connected(projected(a), projected(b), loss, threshold, points)
        if joined or b - a <= min_gap:
            linked[a] = joined
            continue
        middle = (a + b) // 2
        known[middle] = np.asarray(between(a, known[a], b), dtype=float)
        stack += [(middle, b), (a, middle)]
    rows = []
    for iteration in sorted(known):
        projected(iteration)
        minimum, steps, value = cache[iteration]
        rows.append(
            {
                "iteration": iteration,
                "minimum": minimum,
                "steps": steps,
                "loss": value,
                "connected_to_next": linked.get(iteration),
            }
        )
    return rows
