"""python -m engine.cli: the same as the `studio` command."""

import sys

from engine.cli.entry import main

sys.exit(main())
