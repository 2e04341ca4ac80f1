"""``python -m covalent_braket_plugin.cli``: the ``covalent-braket`` command."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
