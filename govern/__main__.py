"""``python -m govern``: the same as the ``govern`` console script."""
from __future__ import annotations

import sys

from govern.cli import main

sys.exit(main())
