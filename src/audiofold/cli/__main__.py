"""`python -m audiofold.cli`: the `audiofold` command without its console script."""

import sys

from . import main

sys.exit(main())
