"""`python -m hessian_powerlaw.cli`: the command line."""

import sys

from hessian_powerlaw.cli import main

sys.exit(main())
