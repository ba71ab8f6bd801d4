"""``python -m jenerator``: the same as the ``jenerator`` command."""

import sys

from jenerator.cli import main

sys.exit(main())
