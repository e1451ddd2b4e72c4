"""``python -m promkit``: the ``promkit`` command."""

import sys

from promkit.tools.cli import main

sys.exit(main())
