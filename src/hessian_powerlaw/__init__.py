"""Power-law Hessian spectra of protein elastic networks and trained neural networks.

`power_law_fit` (numpy only) and `top_spectrum` (imported with torch on first use, so that
`import hessian_powerlaw` stays light) are the Python API; see the README."""

from hessian_powerlaw.fit import power_law_fit

__version__ = "0.1.0"
__all__ = ["Spectrum", "power_law_fit", "top_spectrum"]

_LAZY = {"top_spectrum", "Spectrum", "parameter_blocks"}


def __getattr__(name):
    if name in _LAZY:
        from hessian_powerlaw.network import api

        return getattr(api, name)
    raise AttributeError(f"module 'hessian_powerlaw' has no attribute {name!r}")
