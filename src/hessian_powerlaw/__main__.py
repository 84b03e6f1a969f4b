"""`python -m hessian_powerlaw ...`: the `hessian-powerlaw` command, where its script is not on
the PATH (a source tree on PYTHONPATH, a machine without the package installed)."""

import sys

from hessian_powerlaw.cli import main

if __name__ == "__main__":
    sys.exit(main())
