"""``python -m fastctc``: the command line (see :mod:`fastctc.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
