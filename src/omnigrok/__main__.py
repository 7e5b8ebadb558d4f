"""``python -m omnigrok``: see ``omnigrok.cli``."""

import sys

from omnigrok.cli import main

sys.exit(main())
