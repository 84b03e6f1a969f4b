"""Lanczos checkpoints: a run killed mid-basis resumes to the values of an uninterrupted one."""

import json

import numpy as np
import pytest
import torch

from conftest import DenseOperator
from hessian_powerlaw import cli
from hessian_powerlaw.network.eigensolvers import SolverCheckpoint, SolverError, top_eigenpairs


class Killed(Exception):
    """What the interrupted runs raise in place of a SIGKILL."""


class KilledAfter(DenseOperator):
    """A DenseOperator that dies once it has made `limit` products."""

    def __init__(self, matrix, dtype, limit):
        super().__init__(matrix, dtype)
        self.limit = limit

    def matmat(self, v):
        if self.hvp_count + v.shape[1] > self.limit:
            raise Killed
        return super().matmat(v)


def _power_law_matrix(n=300, seed=0):
    """A symmetric matrix with eigenvalues k^-1 (k = 1..n-40) and 40 negative ones."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    values = torch.cat([1.0 / torch.arange(1, n - 39, dtype=torch.float64), -torch.rand(40, generator=gen)])
    return u @ torch.diag(values) @ u.T


def _solve(op, checkpoint, solver="block", k=30, block=4):
    kwargs = {"checkpoint": checkpoint} if checkpoint is not None else {}
    return top_eigenpairs(op, k, solver=solver, block_size=block, tol=1e-6, progress=False, **kwargs)


@pytest.mark.parametrize("solver, block", [("block", 4), ("lanczos", 1), ("slq", 1)])
def test_killed_run_resumes_to_the_uninterrupted_values(tmp_path, capsys, solver, block):
    matrix = _power_law_matrix()
    extra = {"solver": solver, "block_size": block, "tol": 1e-6, "progress": False}
    extra.update({"slq_steps": 150} if solver == "slq" else {})
    whole = top_eigenpairs(DenseOperator(matrix, torch.float32), 30, **extra)
    path = tmp_path / "run.lanczos.npz"
    with pytest.raises(Killed):
        top_eigenpairs(
            KilledAfter(matrix, torch.float32, whole.hvp_count // 2),
            30,
            checkpoint=SolverCheckpoint(path, every=0),
            **extra,
        )
    assert path.is_file()  # what the kill left
    resumed = top_eigenpairs(DenseOperator(matrix, torch.float32), 30, checkpoint=path, **extra)
    assert "resuming from" in capsys.readouterr().err
    np.testing.assert_array_equal(resumed.eigenvalues, whole.eigenvalues)
    np.testing.assert_array_equal(resumed.residuals, whole.residuals)
    assert resumed.converged == whole.converged and resumed.steps == whole.steps
    first = whole.block  # the check of the operator costs one block of products
    assert resumed.hvp_count == whole.hvp_count + first
    assert not path.exists()  # removed once the run has ended


def test_a_checkpoint_of_another_request_or_operator_starts_afresh(tmp_path, capsys):
    matrix = _power_law_matrix()
    path = tmp_path / "c.npz"
    with pytest.raises(Killed):
        _solve(KilledAfter(matrix, torch.float32, 60), SolverCheckpoint(path, every=0))
    saved = path.read_bytes()
    other_k = _solve(DenseOperator(matrix, torch.float32), path, k=20)
    assert "another request (k, max_cols)" in capsys.readouterr().err
    np.testing.assert_array_equal(
        other_k.eigenvalues, _solve(DenseOperator(matrix, torch.float32), None, k=20).eigenvalues
    )

    path.write_bytes(saved)
    changed = 1.01 * matrix
    fresh = _solve(DenseOperator(changed, torch.float32), path)
    assert "the model or data changed" in capsys.readouterr().err
    np.testing.assert_array_equal(
        fresh.eigenvalues, _solve(DenseOperator(changed, torch.float32), None).eigenvalues
    )


def test_an_unreadable_checkpoint_is_a_miss_and_a_non_writer_writes_none(tmp_path, capsys):
    matrix = _power_law_matrix()
    path = tmp_path / "c.npz"
    path.write_bytes(b"not a checkpoint")
    result = _solve(DenseOperator(matrix, torch.float32), path)
    assert "cannot be read" in capsys.readouterr().err and not path.exists()
    np.testing.assert_array_equal(
        result.eigenvalues, _solve(DenseOperator(matrix, torch.float32), None).eigenvalues
    )
    with pytest.raises(Killed):  # a rank other than 0 of a data-parallel group
        _solve(KilledAfter(matrix, torch.float32, 60), SolverCheckpoint(path, every=0, write=False))
    assert not path.exists()


def test_auto_resumes_with_the_block_of_the_run_it_continues(tmp_path):
    matrix = _power_law_matrix()
    whole = _solve(DenseOperator(matrix, torch.float32), None, block=2)
    path = tmp_path / "c.npz"
    with pytest.raises(Killed):
        _solve(KilledAfter(matrix, torch.float32, 40), SolverCheckpoint(path, every=0), block=2)
    op = DenseOperator(matrix, torch.float32)
    resumed = top_eigenpairs(op, 30, solver="auto", tol=1e-6, progress=False, checkpoint=path)
    assert resumed.block == 2 and "resumed" in resumed.choice
    np.testing.assert_array_equal(resumed.eigenvalues, whole.eigenvalues)


@pytest.mark.parametrize("solver", ["arpack", "power", "dense"])
def test_solvers_that_cannot_resume_refuse_a_checkpoint(tmp_path, solver):
    op = DenseOperator(_power_law_matrix(60), torch.float64)
    with pytest.raises(SolverError, match=f"the {solver} solver cannot resume"):
        top_eigenpairs(op, 5, solver=solver, checkpoint=tmp_path / "c.npz")


def test_dnn_spectrum_killed_mid_basis_resumes_to_the_same_record(tmp_path, monkeypatch, capsys):
    """The command end to end: a kill after half the products, a rerun with the same command,
    the record of an uninterrupted run (costs: the whole run's products plus the check)."""
    from hessian_powerlaw.network import spectrum as spectrum_module
    from hessian_powerlaw.network.noise import small_net

    model = tmp_path / "m.pt"
    small_net.minimum({"n_train": 60, "width": 8}, init_seed=3, out=model, epochs=50, lr=0.1, progress=False)
    argv = ["dnn-spectrum", str(model), "--k", "12", "--solver", "block", "--block-size", "2", "--quiet"]
    assert cli.main([*argv, "--out", str(tmp_path / "whole.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())
    out = tmp_path / "r.json"
    make_operator = spectrum_module._operator

    def dying(*args):
        op, described = make_operator(*args)
        matmat, done = op.matmat, [0]

        def killed_after_half(v):
            done[0] += v.shape[1]
            if done[0] > whole["hvp_count"] // 2:
                raise Killed
            return matmat(v)

        op.matmat = killed_after_half
        return op, described

    monkeypatch.setattr(spectrum_module, "_operator", dying)
    with pytest.raises(Killed):
        cli.main([*argv, "--checkpoint-every", "0", "--out", str(out)])
    assert not out.exists() and (tmp_path / "r.json.lanczos.npz").is_file()
    monkeypatch.setattr(spectrum_module, "_operator", make_operator)
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "resuming from" in capsys.readouterr().err
    record = json.loads(out.read_text())
    assert not (tmp_path / "r.json.lanczos.npz").exists()
    for key in ("beta", "d_ks", "power_law", "trace", "steps"):
        assert record[key] == whole[key], key
    assert record["hvp_count"] == whole["hvp_count"] + 2


def test_checkpoint_flags_are_for_model_files_only(capsys):
    argv = ["dnn-spectrum", "--model-factory", "m:f", "--data-factory", "m:d", "--checkpoint", "c.npz"]
    assert cli.main([*argv, "--out", "r.json"]) == 2
    assert "--checkpoint do(es) not apply with --model-factory" in capsys.readouterr().err


def test_resume_restores_the_random_directions_of_a_rank_deficient_hessian(tmp_path):
    """Rank 12 below K = 30: the basis goes on with random directions (the generator's state),
    which a resumed run must draw exactly as the uninterrupted one."""
    gen = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(400, 12, generator=gen, dtype=torch.float64))
    matrix = u @ torch.diag(torch.logspace(0, -2, 12, dtype=torch.float64)) @ u.T
    whole = _solve(DenseOperator(matrix, torch.float64), None)
    assert whole.replaced > 0
    path = tmp_path / "c.npz"
    with pytest.raises(Killed):
        _solve(KilledAfter(matrix, torch.float64, whole.hvp_count - 8), SolverCheckpoint(path, every=0))
    resumed = _solve(DenseOperator(matrix, torch.float64), path)
    np.testing.assert_array_equal(resumed.eigenvalues, whole.eigenvalues)
    assert resumed.replaced == whole.replaced


def test_top_spectrum_killed_mid_solve_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    import hessian_powerlaw as hp
    from hessian_powerlaw.network.eigensolvers import checkpoint as checkpoint_module

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 20), torch.nn.Tanh(), torch.nn.Linear(20, 3))
    data = (torch.randn(80, 6), torch.randint(0, 3, (80,)))
    loss = torch.nn.CrossEntropyLoss()
    whole = hp.top_spectrum(model, loss, data, k=15, solver="block", block_size=2)
    path = tmp_path / "c.npz"
    monkeypatch.setattr(checkpoint_module, "EVERY", 0.0)  # save after every block
    saves = []
    real_save = checkpoint_module.SolverCheckpoint.save

    def save_then_die(self, *args):
        real_save(self, *args)
        saves.append(1)
        if len(saves) == 3:
            raise Killed

    monkeypatch.setattr(checkpoint_module.SolverCheckpoint, "save", save_then_die)
    with pytest.raises(Killed):
        hp.top_spectrum(model, loss, data, k=15, solver="block", block_size=2, checkpoint=path)
    monkeypatch.setattr(checkpoint_module.SolverCheckpoint, "save", real_save)
    resumed = hp.top_spectrum(model, loss, data, k=15, solver="block", block_size=2, checkpoint=path)
    np.testing.assert_array_equal(resumed.eigenvalues, whole.eigenvalues)
    assert resumed.hvp_count == whole.hvp_count + 2 and not path.exists()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"blocks": "layer"}, "per-block spectra"),
        ({"solver": "dense"}, "not dense"),
        ({"checkpoint": ""}, "must be a file path"),
        ({"checkpoint": 3}, "must be a path, got int"),
    ],
)
def test_top_spectrum_refuses_a_checkpoint_it_cannot_keep(tmp_path, kwargs, error):
    import hessian_powerlaw as hp

    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    data = (torch.randn(10, 4), torch.randint(0, 2, (10,)))
    with pytest.raises((ValueError, TypeError), match=error):
        hp.top_spectrum(
            model, torch.nn.CrossEntropyLoss(), data, k=3, **{"checkpoint": tmp_path / "c", **kwargs}
        )


def test_a_group_resumes_only_where_every_rank_read_the_checkpoint(tmp_path, capsys):
    """A rank on a node that does not see the file starts afresh, and so must every other."""
    matrix = _power_law_matrix()
    path = tmp_path / "c.npz"
    with pytest.raises(Killed):
        _solve(KilledAfter(matrix, torch.float32, 60), SolverCheckpoint(path, every=0))
    asked = []

    def another_rank_lacks_it(flag):
        asked.append(flag)
        return False

    fresh = _solve(
        DenseOperator(matrix, torch.float32), SolverCheckpoint(path, consensus=another_rank_lacks_it)
    )
    assert asked == [True] and "another rank of the group could not read it" in capsys.readouterr().err
    whole = _solve(DenseOperator(matrix, torch.float32), None)
    np.testing.assert_array_equal(fresh.eigenvalues, whole.eigenvalues)
    assert fresh.hvp_count == whole.hvp_count  # no products were restored


def test_everyone_is_this_ranks_answer_outside_a_group():
    from hessian_powerlaw.network.operators import distributed

    assert distributed.everyone(True) is True and distributed.everyone(False) is False


def test_a_checkpoint_path_that_is_not_a_regular_file_is_refused_before_any_product(tmp_path):
    from hessian_powerlaw.io import InputError

    op = DenseOperator(_power_law_matrix(60), torch.float64)
    with pytest.raises(InputError, match="not a regular file"):
        top_eigenpairs(op, 5, solver="lanczos", progress=False, checkpoint=tmp_path)
    assert op.hvp_count == 0
