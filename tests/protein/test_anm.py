import numpy as np
import prody
import pytest
import scipy.linalg

from conftest import BUNDLED, bundled_files
from hessian_powerlaw.protein.analysis import eigenvalues as backend_eigenvalues
from hessian_powerlaw.protein.anm import anm_hessian, eigenvalues
from hessian_powerlaw.protein.structure import read_calpha

prody.confProDy(verbosity="none")


def prody_hessian(coords, cutoff=9.0, gamma=1.0):
    model = prody.ANM()
    model.buildHessian(coords, cutoff=cutoff, gamma=gamma)
    return model.getHessian()


@pytest.fixture(scope="module", params=[p.name for p in bundled_files()])
def coords(request):
    return read_calpha(BUNDLED / request.param)["coords"]


def test_hessian_equals_prody(coords):
    ours, ref = anm_hessian(coords, 9.0, 1.0), prody_hessian(coords)
    assert np.max(np.abs(ours - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_eigenvalues_equal_dense_eigvalsh_of_prody_hessian(coords):
    ref = np.linalg.eigvalsh(prody_hessian(coords))
    ours = eigenvalues(anm_hessian(coords))
    assert np.max(np.abs(ours - ref)) <= 1e-10 * ref.max()


def test_other_cutoff_and_gamma_equal_prody():
    coords = read_calpha(BUNDLED / "1aki.pdb.gz")["coords"]
    ours, ref = anm_hessian(coords, 12.5, 0.3), prody_hessian(coords, 12.5, 0.3)
    assert np.max(np.abs(ours - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_torch_backend_equals_scipy():
    pytest.importorskip("torch")
    hessian = anm_hessian(read_calpha(BUNDLED / "4hhb.pdb.gz")["coords"])
    a = backend_eigenvalues(hessian.copy(), "torch")
    b = backend_eigenvalues(hessian.copy(), "scipy")
    assert np.max(np.abs(a - b)) <= 1e-10 * b.max()


def test_bad_arguments():
    with pytest.raises(ValueError, match="cutoff"):
        anm_hessian(np.zeros((5, 3)), 0.0)
    with pytest.raises(ValueError, match="shape"):
        anm_hessian(np.zeros((5, 2)))


def test_auto_backend_imports_torch_only_when_it_pays(monkeypatch):
    """One large entry in a fresh process stays on scipy (torch's import would cost more than
    it saves); once large entries have cost enough scipy time, torch takes over; a loaded torch
    is used at once. Every backend gives the same eigenvalues."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from conftest import BUNDLED
    from hessian_powerlaw.protein import analysis

    script = (
        "import sys; from hessian_powerlaw.protein.analysis import analyse; "
        f"r, _ = analyse({str(BUNDLED / '4f7i.pdb.gz')!r}, {{'compare': False}}); "
        "assert r['status'] == 'ok' and r['n_modes'] > 2400 / 3; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    monkeypatch.setattr(analysis, "_scipy_seconds", [0.0])
    monkeypatch.setattr(analysis, "sys", SimpleNamespace(modules={}))  # as if torch were not loaded
    assert not analysis._torch_pays()
    analysis._scipy_seconds[0] = analysis.TORCH_IMPORT_SECONDS / analysis.TORCH_SAVING + 1
    assert analysis._torch_pays()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((60, 60))
    h = a + a.T
    reference = np.linalg.eigvalsh(h)
    for backend in ("scipy", "torch", "auto"):
        np.testing.assert_allclose(analysis.eigenvalues(h.copy(), backend), reference, atol=1e-10)


def test_cuda_backend_without_cuda_is_one_line_before_any_work(capsys):
    import torch

    from conftest import BUNDLED
    from hessian_powerlaw import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = ["protein", str(BUNDLED / "1aki.pdb.gz"), "--eigen-backend", "cuda", "--out", "x.tsv"]
    assert cli.main(argv) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_two_stage_lapack_equals_dsyevd_on_a_large_entry():
    """LAPACK's two-stage reduction (called through ctypes in the wheel's OpenBLAS) against
    scipy's dsyevd on 4F7I's Hessian (order 4191, six zero modes)."""
    from conftest import BUNDLED
    from hessian_powerlaw.protein.anm import count_zero_modes
    from hessian_powerlaw.protein.lapack import _routine, two_stage_eigenvalues

    if _routine() is None:
        pytest.skip("no scipy-openblas LAPACKE in this scipy build (the auto backend uses dsyevd)")
    hessian = anm_hessian(read_calpha(BUNDLED / "4f7i.pdb.gz")["coords"])
    reference = scipy.linalg.eigh(hessian, eigvals_only=True, driver="evd")
    values = two_stage_eigenvalues(hessian.copy())
    assert np.max(np.abs(values - reference)) / reference.max() < 1e-12
    assert count_zero_modes(values, 1e-12) == count_zero_modes(reference, 1e-12) == 6


def test_auto_backend_takes_the_two_stage_routine_for_large_matrices_and_falls_back(monkeypatch):
    from hessian_powerlaw.protein import analysis

    calls = []
    h = np.diag(np.arange(analysis.two_stage_min_size(), dtype=float))
    monkeypatch.setattr(analysis, "two_stage_eigenvalues", lambda m: calls.append(len(m)) or None)
    np.testing.assert_array_equal(analysis.eigenvalues(h.copy(), "auto"), np.diag(h))  # fallback: dsyevd
    analysis.eigenvalues(h[:-1, :-1].copy(), "auto")  # below the size: dsyevd directly
    analysis.eigenvalues(h.copy(), "scipy")
    assert calls == [analysis.two_stage_min_size()]


@pytest.mark.parametrize("threads, size", [(1, 800), (2, 1400), (8, 2000)])
def test_two_stage_routine_starts_lower_with_fewer_blas_threads(monkeypatch, threads, size):
    from hessian_powerlaw.protein import analysis

    monkeypatch.setattr(analysis, "blas_threads", lambda: threads)
    assert analysis.two_stage_min_size() == size


def test_blas_threads_follow_threadpool_limits():
    from threadpoolctl import threadpool_limits

    from hessian_powerlaw.protein import analysis

    with threadpool_limits(1):
        assert analysis.blas_threads() == 1
        assert analysis.two_stage_min_size() == 800


def test_two_stage_routine_that_gives_wrong_values_is_not_trusted():
    import ctypes

    from hessian_powerlaw.protein import lapack

    def zeros(layout, jobz, uplo, n, matrix, lda, values):  # a routine with the wrong ABI, say
        ctypes.memset(values, 0, n.value * 8)
        return 0

    assert not lapack._passes_check((zeros, ctypes.c_int32))
    with pytest.raises(ValueError, match="C-contiguous float64"):
        lapack._call((zeros, ctypes.c_int32), np.eye(3)[:, :2])
