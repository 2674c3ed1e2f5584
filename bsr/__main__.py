"""``python -m bsr`` runs the command line."""

import sys

from bsr.cli import main

sys.exit(main())
