"""`python -m bots` runs the `parley` command."""

import sys

from bots.cli import main

sys.exit(main())
