"""``python -m softargmax``: the command line, as the installed ``softargmax`` command."""

import sys

from .cli import main

sys.exit(main())
