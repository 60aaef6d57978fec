"""python -m retrograd: the same as the `retrograd` command."""

import sys

from .cli import main

sys.exit(main())
