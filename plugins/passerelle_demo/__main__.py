"""``python -m passerelle_demo seed|change --dsn ...``: see passerelle_demo.seed."""

from __future__ import annotations

import sys

from passerelle_demo.seed import main

if __name__ == "__main__":
    sys.exit(main())
