"""``python -m otdiv.cli``: the ``otdiv`` command."""

import sys

from otdiv.cli import main

sys.exit(main())
