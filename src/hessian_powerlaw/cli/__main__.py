import sys

from hessian_powerlaw.cli import main

sys.exit(main())
