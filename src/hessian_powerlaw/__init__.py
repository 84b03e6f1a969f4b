"""Power-law Hessian spectra of protein elastic networks and trained neural networks."""

__version__ = "0.1.0"
