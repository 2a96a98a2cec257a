"""``python -m repocomplete`` is the ``repocomplete`` command."""

import sys

from repocomplete.cli import main

sys.exit(main())
